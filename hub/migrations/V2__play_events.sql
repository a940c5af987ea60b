-- Proof of play and the reports on PostgreSQL (U3, X4, issue 21): the
-- store's `play_events` tree as its own table, range-partitioned by the
-- event's start (one partition per day, made ahead by the leader; events
-- outside every partition land in the default one and move into a day's
-- partition when it is made). The columns are read from the stored record
-- (`fleet::events::StoredEvent` as JSON, kept byte for byte in `value`),
-- indexed for the report filters: access group, user, device, node, item,
-- and the time range (the partition key, and `key`, which starts with it).
CREATE TABLE play_events (
    start        timestamptz NOT NULL,
    key          bytea NOT NULL,
    id           text COLLATE "C" NOT NULL,
    device       text COLLATE "C" NOT NULL,
    node         text COLLATE "C",
    item         text COLLATE "C" NOT NULL,
    access_group text COLLATE "C",
    user_id      text COLLATE "C",
    played       boolean NOT NULL,
    duration_ms  bigint NOT NULL,
    value        bytea NOT NULL,
    PRIMARY KEY (key, start)
) PARTITION BY RANGE (start);

CREATE TABLE play_events_default PARTITION OF play_events DEFAULT;

CREATE INDEX play_events_by_start ON play_events (start);
CREATE INDEX play_events_by_device ON play_events (device, start);
CREATE INDEX play_events_by_node ON play_events (node, start);
CREATE INDEX play_events_by_item ON play_events (item, start);
CREATE INDEX play_events_by_group ON play_events (access_group, start);
CREATE INDEX play_events_by_user ON play_events (user_id, start) WHERE user_id IS NOT NULL;

-- Events a store held before this migration move from store_records.
INSERT INTO play_events (start, key, id, device, node, item, access_group, user_id, played,
                         duration_ms, value)
SELECT (j #>> '{event,start}')::timestamptz, r.key, j #>> '{event,id}',
       j #>> '{event,device_id}', j ->> 'node', j #>> '{event,item}',
       j #>> '{event,access_group}', j ->> 'user', (j #>> '{event,outcome}') = 'played',
       (j #>> '{event,duration_ms}')::bigint, r.value
FROM store_records r, LATERAL (SELECT convert_from(r.value, 'UTF8')::jsonb AS j) AS p
WHERE r.tree = 'play_events';
DELETE FROM store_records WHERE tree = 'play_events';
