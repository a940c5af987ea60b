import { describe, expect, it } from 'vitest';
import { ApiFailure } from '../../lib/api/client';
import { problemOf } from './problems';

describe('problemOf (M5, C11)', () => {
  it('gives expired and used tokens a page of their own', () => {
    expect(problemOf(new ApiFailure(410, 'invite_expired', 'x'))?.title).toMatch(/expired/);
    expect(problemOf(new ApiFailure(409, 'invite_used', 'x'))?.title).toMatch(/already accepted/);
    expect(problemOf(new ApiFailure(409, 'token_used', 'x'))?.code).toBe('token_used');
    expect(problemOf(new ApiFailure(410, 'signup_expired', 'x'))?.title).toMatch(/expired/);
  });
  it('leaves other failures to the form', () => {
    expect(problemOf(new ApiFailure(400, 'weak_password', 'x'))).toBeNull();
    expect(problemOf(new Error('x'))).toBeNull();
  });
});
