// Date inputs (licence editor, members, reports).
import { describe, expect, it } from 'vitest';
import { fromLocalInput, toLocalInput } from './format';

describe('date inputs', () => {
  it('round-trips an instant through a datetime-local value', () => {
    const iso = '2027-03-04T05:06:00.000Z';
    expect(fromLocalInput(toLocalInput(iso))).toBe(iso);
    expect(toLocalInput(null)).toBe('');
    expect(toLocalInput('nonsense')).toBe('');
    expect(fromLocalInput('')).toBeNull();
    expect(fromLocalInput('not a date')).toBeNull();
  });
});
