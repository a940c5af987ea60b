// Effective permissions explained (P4) and the catalogue (P7).
import { describe, expect, it } from 'vitest';
import { CATALOGUE, explain, permissionLabel } from './permissions';

describe('permissions', () => {
  it('lists the whole P7 catalogue once', () => {
    const names = CATALOGUE.flatMap((g) => g.entries.map((p) => p.name));
    expect(names.length).toBe(24);
    expect(new Set(names).size).toBe(24);
    expect(permissionLabel('comment.add')).toBe('Comments: Add');
    expect(permissionLabel('publish')).toBe('Publish');
    expect(permissionLabel('update_custom_attributes')).toBe('Update custom attributes');
    expect(permissionLabel('annotation.edit_others')).toBe('Annotations: Edit others’');
  });

  it('names the role default and each group that grants a permission', () => {
    const rows = explain({
      user: 'u-1',
      role: 'contributor',
      role_defaults: ['download', 'comment.view'],
      groups: [
        { id: 'g-1', name: 'Publishers', node: 'n', direct: true, permissions: ['publish', 'download'] },
        { id: 'g-2', name: 'Everyone', node: 'n', direct: false, permissions: ['publish'] },
      ],
      hidden_groups: 1,
      effective: ['download', 'comment.view', 'publish', 'manage_devices'],
    });
    const by = new Map(rows.map((r) => [r.name, r]));
    expect(by.get('download')?.sources).toEqual(['role default (contributor)', 'group “Publishers”']);
    expect(by.get('publish')?.sources).toEqual(['group “Publishers”', 'group “Everyone” (through a member group)']);
    expect(by.get('manage_devices')).toMatchObject({ granted: true, sources: ['a group outside your domain'] });
    expect(by.get('share')).toMatchObject({ granted: false, sources: [] });
  });
});
