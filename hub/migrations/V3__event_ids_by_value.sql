-- Retention of proof of play on PostgreSQL (U3, issue 21): an event id's
-- record holds its event's key, which starts with the event's start, so the
-- ids of events older than the cut-off are a range of this index, not a
-- scan of every id.
CREATE INDEX store_records_event_ids_by_value ON store_records (value)
    WHERE tree = 'play_event_ids';
