// What every edit form of the administration pages takes: the values it
// starts from, whether it creates, whether an action runs, the label of its
// button, and what to do with the values; and the values of each form.
import type { LicenceTerms } from './licence';
import type { Schemas } from '../api/client';

/** The props of a form over values of type `T`. */
export interface FormProps<T> {
  /** The values the form starts from (read once). */
  initial: T;
  /** Whether it creates (some fields are set only then). */
  create?: boolean;
  /** Whether an action runs (the button waits). */
  busy?: boolean;
  /** The button's label. */
  submit: string;
  /** Called with the values when submitted. */
  onsave: (values: T) => void;
}

/** The values of NodeForm. */
export interface NodeFields {
  name: string;
  restricted: boolean;
  strict_feeds: boolean;
  time_zone: string;
  country: string;
  region: string;
  content_manager_email: string;
}

/** The values of UserForm. */
export interface UserFields {
  name: string;
  email: string;
  password: string;
  role: string;
  domain: string[];
  requires_approval: boolean;
  disabled: boolean;
}

/** The values of PermissionGroupForm. */
export interface GroupFields {
  node: string;
  name: string;
  email: string;
  description: string;
  permissions: string[];
}

/** The values of AccessGroupForm. */
export interface AccessGroupFields {
  node: string;
  name: string;
  categories: string[];
  license: LicenceTerms;
}

/** The props of the visibility editor (M1, M2) and its button: which item, and what to do once saved. */
export interface VisibilityProps {
  kind: 'content' | 'playlist';
  id: string;
  name: string;
  allowed: string[];
  settings?: Schemas['Settings'];
  onsaved?: (allowed: string[], settings: Schemas['Settings']) => void;
}
