-- Per-source request rate limits every hub replica shares (S12, X5; issue
-- 21): one GCRA bucket per key (a route class and a source), its
-- theoretical arrival time in Unix microseconds by the server's clock. A
-- row whose time has passed is as good as absent; such rows are deleted as
-- requests are counted. Unlogged: a request's check writes no WAL and
-- waits for no flush (a crash of the server forgets the buckets, which
-- only lets sources start afresh).
CREATE UNLOGGED TABLE rate_limits (
    key    text COLLATE "C" PRIMARY KEY,
    tat_us bigint NOT NULL
);
CREATE INDEX rate_limits_by_tat ON rate_limits (tat_us);
