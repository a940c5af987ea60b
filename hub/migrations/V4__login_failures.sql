-- Failed-login counts every hub replica shares (S8, S12, X5; issue 21): one
-- row per counted key (a login name, or a name from one source), with its
-- failures in the window that started at `since_us` (Unix microseconds).
-- The hub keeps it bounded: rows whose window has passed, and the oldest
-- beyond a cap, are deleted as failures are counted.
CREATE TABLE login_failures (
    key      text COLLATE "C" PRIMARY KEY,
    count    integer NOT NULL,
    since_us bigint NOT NULL
);
CREATE INDEX login_failures_by_since ON login_failures (since_us);
