-- The per-day usage rollup (U3, L8, X4; issue 21): plays, skips and time
-- played per UTC day and per value of every report filter but the device
-- (node, item, access group, user), so a summary over whole days reads the
-- rollup instead of every event. Kept by statement triggers on play_events
-- inside the transaction that writes the events (an ingest batch's commit,
-- a browser playback's duration update, retention's deletes): the rollup
-- always equals the events. Moving a day's events from the default
-- partition into the day's partition works on the partitions themselves
-- and fires nothing (the totals do not change); dropping a day's partition
-- fires nothing either, so retention deletes the rollup's days itself.
CREATE TABLE play_daily (
    day          date NOT NULL,
    node         text COLLATE "C",
    item         text COLLATE "C" NOT NULL,
    access_group text COLLATE "C",
    user_id      text COLLATE "C",
    played       bigint NOT NULL,
    skipped      bigint NOT NULL,
    played_ms    numeric NOT NULL,
    UNIQUE NULLS NOT DISTINCT (day, node, item, access_group, user_id)
);

-- Adds (TG_ARGV[0] = 1) or subtracts (-1) the rows of the statement's
-- transition table `changed`; a group left with no play and no skip goes.
CREATE FUNCTION play_daily_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    sign bigint := TG_ARGV[0]::bigint;
BEGIN
    INSERT INTO play_daily AS d (day, node, item, access_group, user_id, played, skipped,
                                 played_ms)
    SELECT (c.start AT TIME ZONE 'UTC')::date, c.node, c.item, c.access_group, c.user_id,
           sign * count(*) FILTER (WHERE c.played), sign * count(*) FILTER (WHERE NOT c.played),
           sign * COALESCE(sum(c.duration_ms) FILTER (WHERE c.played), 0)
    FROM changed c
    GROUP BY 1, 2, 3, 4, 5
    ON CONFLICT (day, node, item, access_group, user_id) DO UPDATE
        SET played = d.played + EXCLUDED.played,
            skipped = d.skipped + EXCLUDED.skipped,
            played_ms = d.played_ms + EXCLUDED.played_ms;
    IF sign < 0 THEN
        DELETE FROM play_daily d
        WHERE d.played = 0 AND d.skipped = 0
          AND d.day IN (SELECT DISTINCT (c.start AT TIME ZONE 'UTC')::date FROM changed c);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER play_daily_inserted AFTER INSERT ON play_events
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION play_daily_apply('1');
CREATE TRIGGER play_daily_deleted AFTER DELETE ON play_events
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION play_daily_apply('-1');
CREATE TRIGGER play_daily_updated_new AFTER UPDATE ON play_events
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION play_daily_apply('1');
CREATE TRIGGER play_daily_updated_old AFTER UPDATE ON play_events
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION play_daily_apply('-1');

-- The events stored before this migration.
INSERT INTO play_daily (day, node, item, access_group, user_id, played, skipped, played_ms)
SELECT (start AT TIME ZONE 'UTC')::date, node, item, access_group, user_id,
       count(*) FILTER (WHERE played), count(*) FILTER (WHERE NOT played),
       COALESCE(sum(duration_ms) FILTER (WHERE played), 0)
FROM play_events
GROUP BY 1, 2, 3, 4, 5;
