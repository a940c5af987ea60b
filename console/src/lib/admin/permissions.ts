// The permission catalogue (P7) grouped for checkboxes, and a user's
// effective permissions explained (P1, P4): which role default or which
// permission group grants each.
//
// Owns: the catalogue's names and labels as the console shows them, the
// explanation built from `EffectivePermissionsView`. Must not: decide what
// a user holds (the hub's `effective` list is the truth).
import type { Schemas } from '../api/client';

/** The catalogue (P7) in groups, in catalogue order: `name:Label` entries. */
const GROUPS: [string, string][] = [
  ['Media', 'download:Download rate:Rate feedback:Feedback favorite:Favourite share:Share update_custom_attributes:Update_custom_attributes process_media:Process_media'],
  ['Annotations', 'annotation.view_own:View_own annotation.view_all:View_all annotation.edit_own:Edit_own annotation.edit_others:Edit_others’ annotation.delete_own:Delete_own annotation.delete_others:Delete_others’'],
  ['Comments', 'comment.view:View comment.add:Add comment.edit_own:Edit_own comment.delete_own:Delete_own comment.delete_others:Delete_others’'],
  ['Collections', 'learning_plans:Learning_plans private_playlists:Private_playlists private_collections:Private_collections'],
  ['Screens', 'approve_content:Approve_content publish:Publish manage_devices:Manage_devices'],
];

/** The catalogue (P7) in groups, in catalogue order. */
export const CATALOGUE: { group: string; entries: { name: string; label: string }[] }[] = GROUPS.map(([group, list]) => ({
  group,
  entries: list.split(' ').map((e) => {
    const [name = '', label = ''] = e.split(':');
    return { name, label: label.replace(/_/g, ' ') };
  }),
}));

/** A catalogue entry's label from its name: `comment.delete_others` → `Delete others`. */
export function labelOf(name: string): string {
  const last = name.split('.').pop() ?? name;
  const words = last.replace(/_/g, ' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** The catalogue as the hub lists it (`GET /api/v1/permissions`), grouped by family for checkboxes, in order. */
export function grouped(entries: readonly Schemas['CatalogueEntry'][]): { group: string; entries: { name: string; label: string; hint: string }[] }[] {
  const out: { group: string; entries: { name: string; label: string; hint: string }[] }[] = [];
  for (const e of entries) {
    let g = out.find((x) => x.group === e.family);
    if (!g) out.push((g = { group: e.family, entries: [] }));
    const from = e.default_from ? ` Role default from ${e.default_from} up.` : '';
    g.entries.push({ name: e.name, label: labelOf(e.name), hint: `${e.description}${from}` });
  }
  return out;
}

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
