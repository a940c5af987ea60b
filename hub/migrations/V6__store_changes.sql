-- The keys a commit wrote, when they are too many for one NOTIFY payload
-- (PostgreSQL's limit is 8,000 bytes; X5, issue 21): the commit stores
-- them here and notifies the row's id, and each replica's change feed
-- reads the row. Rows older than a few minutes are deleted as commits add
-- new ones; a replica that finds its row gone rebuilds its views.
CREATE TABLE store_changes (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    payload text NOT NULL
);
CREATE INDEX store_changes_by_at ON store_changes (at);
