// Vitest setup: DOM matchers-free; cleans components between tests.
import { afterEach } from 'vitest';
import { cleanup } from '@testing-library/svelte';

afterEach(() => cleanup());
