// The permission catalogue (P7) grouped for checkboxes, and a user's
// effective permissions explained (P1, P4): which role default or which
// permission group grants each.
//
// Owns: the catalogue's names and labels as the console shows them, the
// explanation built from `EffectivePermissionsView`. Must not: decide what
// a user holds (the hub's `effective` list is the truth).
import type { Schemas } from '../api/client';

/** The catalogue (P7) in groups, in catalogue order. */
export const CATALOGUE: { group: string; entries: { name: string; label: string }[] }[] = [
  {
    group: 'Media',
    entries: [
      { name: 'download', label: 'Download' },
      { name: 'rate', label: 'Rate' },
      { name: 'feedback', label: 'Feedback' },
      { name: 'favorite', label: 'Favourite' },
      { name: 'share', label: 'Share' },
      { name: 'update_custom_attributes', label: 'Update custom attributes' },
      { name: 'process_media', label: 'Process media' },
    ],
  },
  {
    group: 'Annotations',
    entries: [
      { name: 'annotation.view_own', label: 'View own' },
      { name: 'annotation.view_all', label: 'View all' },
      { name: 'annotation.edit_own', label: 'Edit own' },
      { name: 'annotation.edit_others', label: 'Edit others’' },
      { name: 'annotation.delete_own', label: 'Delete own' },
      { name: 'annotation.delete_others', label: 'Delete others’' },
    ],
  },
  {
    group: 'Comments',
    entries: [
      { name: 'comment.view', label: 'View' },
      { name: 'comment.add', label: 'Add' },
      { name: 'comment.edit_own', label: 'Edit own' },
      { name: 'comment.delete_own', label: 'Delete own' },
      { name: 'comment.delete_others', label: 'Delete others’' },
    ],
  },
  {
    group: 'Collections',
    entries: [
      { name: 'learning_plans', label: 'Learning plans' },
      { name: 'private_playlists', label: 'Private playlists' },
      { name: 'private_collections', label: 'Private collections' },
    ],
  },
  {
    group: 'Screens',
    entries: [
      { name: 'approve_content', label: 'Approve content' },
      { name: 'publish', label: 'Publish' },
      { name: 'manage_devices', label: 'Manage devices' },
    ],
  },
];

/** A permission's label with its group, e.g. `Comments: Add`. */
export function permissionLabel(name: string): string {
  for (const g of CATALOGUE) {
    const p = g.entries.find((x) => x.name === name);
    if (p) return g.group === 'Media' || g.group === 'Screens' || g.group === 'Collections' ? p.label : `${g.group}: ${p.label}`;
  }
  return name;
}

/** One permission of the catalogue and where the user gets it from. */
export interface Explained {
  name: string;
  label: string;
  granted: boolean;
  /** In words: `role default (moderator)`, `group “Publishers” (through another group)`, … */
  sources: string[];
}

/** Every catalogue permission with whether it is held and why (P4). */
export function explain(view: Schemas['EffectivePermissionsView']): Explained[] {
  const effective = new Set(view.effective);
  const defaults = new Set(view.role_defaults);
  const out: Explained[] = [];
  for (const g of CATALOGUE) {
    for (const p of g.entries) {
      const sources: string[] = [];
      if (defaults.has(p.name)) sources.push(`role default (${view.role})`);
      for (const grp of view.groups) {
        if (grp.permissions.includes(p.name)) sources.push(`group “${grp.name}”${grp.direct ? '' : ' (through a member group)'}`);
      }
      const granted = effective.has(p.name);
      if (granted && sources.length === 0) {
        sources.push(view.hidden_groups > 0 ? 'a group outside your domain' : 'granted by the hub');
      }
      out.push({ name: p.name, label: permissionLabel(p.name), granted, sources });
    }
  }
  return out;
}
