// The console's pages by path (DESIGN §8 names /devices/{id} and
// /content/{id} as public page paths used in mails).
import type { Component } from 'svelte';
import { match } from './lib/router.svelte';
import Fleet from './pages/Fleet.svelte';
import NotFound from './pages/NotFound.svelte';
import Device from './pages/Device.svelte';
import Pair from './pages/Pair.svelte';
import Content from './pages/Content.svelte';
import Templates from './pages/Templates.svelte';
import TemplateDesigner from './pages/TemplateDesigner.svelte';
import Playlists from './pages/Playlists.svelte';
import PlaylistEditor from './pages/PlaylistEditor.svelte';
import Schedules from './pages/Schedules.svelte';
import ScheduleEditor from './pages/ScheduleEditor.svelte';
import Approvals from './pages/Approvals.svelte';
import Publishing from './pages/Publishing.svelte';
import Profile from './pages/Profile.svelte';
import Tree from './pages/admin/Tree.svelte';
import Users from './pages/admin/Users.svelte';
import User from './pages/admin/User.svelte';
import PermissionGroups from './pages/admin/PermissionGroups.svelte';
import PermissionGroup from './pages/admin/PermissionGroup.svelte';
import AccessGroups from './pages/access/AccessGroups.svelte';
import AccessGroup from './pages/access/AccessGroup.svelte';
import Reports from './pages/reports/Reports.svelte';
import Audit from './pages/reports/Audit.svelte';
import Alerts from './pages/reports/Alerts.svelte';
import MailOutbox from './pages/reports/MailOutbox.svelte';
import Feedback from './pages/admin/Feedback.svelte';
import My from './pages/my/My.svelte';
import Item from './pages/Item.svelte';
import Favorites from './pages/Favorites.svelte';
import AttributeDefs from './pages/AttributeDefs.svelte';
import { PUBLIC_ROUTES, type PublicRoute } from './pages/public/routes';

/** A page and the path pattern it answers. */
export interface Route {
  /** Path pattern, `:name` for a parameter. */
  pattern: string;
  /** The page; it receives the parameters as `params`. */
  page: Component<{ params: Record<string, string> }>;
  /** Document title. */
  title: string;
}

/** Every page. */
export const ROUTES: Route[] = [
  { pattern: '/fleet', page: Fleet, title: 'Fleet' },
  { pattern: '/devices/:id', page: Device, title: 'Device' },
  { pattern: '/pair', page: Pair, title: 'Pair a screen' },
  { pattern: '/content', page: Content, title: 'Content' },
  { pattern: '/templates', page: Templates, title: 'Templates' },
  { pattern: '/templates/:id', page: TemplateDesigner, title: 'Template designer' },
  { pattern: '/playlists', page: Playlists, title: 'Playlists' },
  { pattern: '/playlists/:id', page: PlaylistEditor, title: 'Playlist' },
  { pattern: '/schedules', page: Schedules, title: 'Schedules' },
  { pattern: '/schedules/:id', page: ScheduleEditor, title: 'Schedule' },
  { pattern: '/approvals', page: Approvals, title: 'Approvals' },
  { pattern: '/publishing', page: Publishing, title: 'Publishing' },
  { pattern: '/profile', page: Profile, title: 'My profile' },
  { pattern: '/admin/tree', page: Tree, title: 'Tenancy tree' },
  { pattern: '/admin/users', page: Users, title: 'Users' },
  { pattern: '/admin/users/:id', page: User, title: 'User' },
  { pattern: '/admin/permission-groups', page: PermissionGroups, title: 'Permission groups' },
  { pattern: '/admin/permission-groups/:id', page: PermissionGroup, title: 'Permission group' },
  { pattern: '/access-groups', page: AccessGroups, title: 'Access groups' },
  { pattern: '/access-groups/:id', page: AccessGroup, title: 'Access group' },
  { pattern: '/reports', page: Reports, title: 'Reports' },
  { pattern: '/audit', page: Audit, title: 'Audit log' },
  { pattern: '/alerts', page: Alerts, title: 'Alerts' },
  { pattern: '/mail', page: MailOutbox, title: 'Mail outbox' },
  { pattern: '/feedback', page: Feedback, title: 'Feedback' },
  { pattern: '/my', page: My, title: 'My content' },
  { pattern: '/content/:id', page: Item, title: 'Item' },
  { pattern: '/favorites', page: Favorites, title: 'My favorites' },
  { pattern: '/attributes', page: AttributeDefs, title: 'Custom attributes' },
];

/** Where `/` and `/login` lead once logged in. */
export const HOME = '/fleet';

/** The page for `path`, with its parameters; NotFound when none matches. */
export function resolve(path: string): { route: Route; params: Record<string, string> } {
  for (const route of ROUTES) {
    const params = match(route.pattern, path);
    if (params) return { route, params };
  }
  return { route: { pattern: '*', page: NotFound, title: 'Not found' }, params: {} };
}

/** The public page (no login) for `path`, with its parameters, or null. */
export function resolvePublic(path: string): { route: PublicRoute; params: Record<string, string> } | null {
  for (const route of PUBLIC_ROUTES) {
    const params = match(route.pattern, path);
    if (params) return { route, params };
  }
  return null;
}
