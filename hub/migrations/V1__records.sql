-- The hub's store on PostgreSQL (X4): the Storage seam's named trees of
-- (key, value) records in one table. bytea compares byte by byte, so the
-- primary key's order is the key order sled scans in; a prefix scan is a
-- range of it (key >= prefix AND key < the prefix's successor).
CREATE TABLE store_records (
    tree  text COLLATE "C" NOT NULL,
    key   bytea NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (tree, key)
);
