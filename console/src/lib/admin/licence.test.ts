// Licence terms in words and units (L2, L5; C9 licence editor).
import { describe, expect, it } from 'vitest';
import { defaultTerms, durationWords, memberState, parseCountries, problems, splitDuration, summary, termsOf, toSeconds, windowWords } from './licence';

const words = (iso: string) => iso.slice(0, 10);

describe('licence', () => {
  it('round-trips durations through the largest exact unit', () => {
    expect(splitDuration(14 * 86400)).toEqual({ amount: 2, unit: 'weeks' });
    expect(splitDuration(3 * 86400)).toEqual({ amount: 3, unit: 'days' });
    expect(splitDuration(90 * 60)).toEqual({ amount: 90, unit: 'minutes' });
    expect(splitDuration(5 * 3600)).toEqual({ amount: 5, unit: 'hours' });
    expect(toSeconds(3, 'days')).toBe(259200);
    expect(toSeconds(splitDuration(7200).amount, splitDuration(7200).unit)).toBe(7200);
  });

  it('says durations in words', () => {
    expect(durationWords(86400)).toBe('1 day');
    expect(durationWords(30 * 86400)).toBe('30 days');
    expect(durationWords(14 * 86400)).toBe('2 weeks');
    expect(durationWords(86400 + 3 * 3600)).toBe('1 day 3 hours');
    expect(durationWords(180)).toBe('3 minutes');
  });

  it('summarises open terms: no end, any device, offline for a week', () => {
    expect(summary(defaultTerms(), words)).toEqual([
      'Each member may play from when they join with no end date, unless they are given their own end date or removed from the group.',
      'Any number of devices may hold the licence.',
      'A device that cannot reach the hub keeps playing for 1 week after its last contact.',
      'Content may not be exported from devices.',
      'It plays in every country.',
    ]);
  });

  it('summarises every term: the earliest limit wins', () => {
    const text = summary(
      {
        duration_from_join_secs: 30 * 86400,
        duration_from_first_use_secs: 2 * 86400,
        fixed_start: '2027-01-01T00:00:00Z',
        fixed_end: '2027-12-31T00:00:00Z',
        max_active_devices: 1,
        allow_offline: false,
        offline_grace_secs: 0,
        allow_export: true,
        allowed_countries: ['DE', 'AT'],
      },
      words,
    );
    expect(text[0]).toBe(
      'Each member may play from when they join, but not before 2027-01-01, until the earliest of: 30 days after joining; 2 days after first playing; 2027-12-31 — or earlier if their own end date comes first or they are removed from the group.',
    );
    expect(text.slice(1)).toEqual([
      'At most 1 device may hold the licence at once; another must be deactivated first.',
      'A device plays only while it stays in contact with the hub.',
      'Content may be exported from devices.',
      'It plays only on devices in DE, AT.',
    ]);
    expect(summary({ ...defaultTerms(), fixed_end: '2027-06-01T00:00:00Z' }, words)[0]).toBe(
      'Each member may play from when they join until 2027-06-01, or earlier if their own end date comes first or they are removed from the group.',
    );
  });

  it('finds what the hub would refuse', () => {
    expect(problems(defaultTerms())).toEqual([]);
    expect(problems({ ...defaultTerms(), fixed_start: '2027-02-01T00:00:00Z', fixed_end: '2027-01-01T00:00:00Z' })).toEqual(['The fixed end must be after the fixed start.']);
    expect(problems({ ...defaultTerms(), offline_grace_secs: 60 })).toEqual(['The offline grace must be at least 3 minutes.']);
    expect(problems({ ...defaultTerms(), max_active_devices: 0, allowed_countries: ['DE', 'GER'] })).toEqual([
      'Max active devices must be at least 1 (leave it empty for no limit).',
      'Not two-letter country codes: GER.',
    ]);
    expect(parseCountries('de, at;fr  DE')).toEqual(['DE', 'AT', 'FR']);
  });

  it('reads the untyped licence of a group with defaults', () => {
    expect(termsOf({ allow_offline: false, offline_grace_secs: 0, allow_export: true }).allow_export).toBe(true);
    expect(termsOf(undefined).allow_offline).toBe(true);
  });

  it('names a member’s state and window', () => {
    const now = new Date('2027-01-10T00:00:00Z');
    const user = { type: 'user', user_id: 'u-1' } as const;
    const device = { type: 'device', device_id: 'd-1' } as const;
    const win = { starts_at: '2027-01-01T00:00:00Z', ends_at: '2027-02-01T00:00:00Z', ended_by: 'member_end_date' } as const;
    expect(memberState({ member: user, window: win, in_window_now: true, active: true }, now).label).toBe('Has access');
    expect(memberState({ member: device, window: win, in_window_now: true, active: false }, now).label).toBe('Inactive device');
    expect(memberState({ member: user, window: win, in_window_now: false, active: true, removed_at: '2027-01-05T00:00:00Z' }, now).label).toBe('Removed');
    expect(memberState({ member: user, window: { starts_at: '2027-03-01T00:00:00Z' }, in_window_now: false, active: true }, now).label).toBe('Not started');
    expect(memberState({ member: user, window: win, in_window_now: false, active: true }, now).label).toBe('Ended');
    expect(windowWords(win, words)).toBe('from 2027-01-01 until 2027-02-01 (the member’s end date)');
    expect(windowWords({ starts_at: '2027-01-01T00:00:00Z' }, words)).toBe('from 2027-01-01 with no end yet');
  });
});
