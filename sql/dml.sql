-- every DML path invalidates: COPY FROM, INSERT ... ON CONFLICT, MERGE, partitions
-- (watched through the parent, including rows moving between partitions), TRUNCATE
CREATE EXTENSION pgcohere;
SET pgcohere.publish_mode = direct;
CREATE TABLE kv (k text PRIMARY KEY, v int);
SELECT pgcohere.watch('kv', ARRAY['kv:{k}', 'kv:v:{v}']);

BEGIN;
COPY kv FROM stdin;
a	1
b	2
\.
SELECT * FROM pgcohere.pending();
ROLLBACK;

INSERT INTO kv VALUES ('a', 1);
BEGIN;
INSERT INTO kv VALUES ('a', 5), ('c', 3) ON CONFLICT (k) DO UPDATE SET v = excluded.v;
SELECT * FROM pgcohere.pending();
ROLLBACK;
BEGIN;
INSERT INTO kv VALUES ('a', 7) ON CONFLICT DO NOTHING;
SELECT * FROM pgcohere.pending();
ROLLBACK;

BEGIN;
MERGE INTO kv USING (VALUES ('a', 10), ('d', 4)) AS s(k, v) ON kv.k = s.k
    WHEN MATCHED THEN UPDATE SET v = s.v
    WHEN NOT MATCHED THEN INSERT VALUES (s.k, s.v);
SELECT * FROM pgcohere.pending();
ROLLBACK;
BEGIN;
MERGE INTO kv USING (VALUES ('a')) AS s(k) ON kv.k = s.k WHEN MATCHED THEN DELETE;
SELECT * FROM pgcohere.pending();
ROLLBACK;

-- TRUNCATE publishes every rule's coarse pattern and the tag
BEGIN;
TRUNCATE kv;
SELECT * FROM pgcohere.pending();
ROLLBACK;

-- partitions: watch the parent
CREATE TABLE ev (id int, region text, n int) PARTITION BY LIST (region);
CREATE TABLE ev_eu PARTITION OF ev FOR VALUES IN ('eu');
CREATE TABLE ev_us (n int, region text, id int);  -- another column order
ALTER TABLE ev ATTACH PARTITION ev_us FOR VALUES IN ('us');
SELECT pgcohere.watch('ev', ARRAY['ev:{region}:{id}']);
CREATE TABLE ev_ap PARTITION OF ev FOR VALUES IN ('ap');  -- created after watch()
SELECT tgrelid::regclass, tgname FROM pg_trigger WHERE tgname LIKE 'pgcohere%' AND tgrelid::regclass::text LIKE 'ev%'
    ORDER BY tgrelid::regclass::text, tgname;
BEGIN;
INSERT INTO ev VALUES (1, 'eu', 0), (2, 'us', 0), (3, 'ap', 0);
SELECT * FROM pgcohere.pending();
ROLLBACK;
INSERT INTO ev VALUES (1, 'eu', 0);
BEGIN;
UPDATE ev SET region = 'us' WHERE id = 1;  -- moves the row to another partition
SELECT * FROM pgcohere.pending();
ROLLBACK;
BEGIN;
INSERT INTO ev_us (id, region, n) VALUES (9, 'us', 0);  -- straight into a partition
SELECT * FROM pgcohere.pending();
ROLLBACK;
BEGIN;
TRUNCATE ev_ap;  -- one partition
SELECT * FROM pgcohere.pending();
ROLLBACK;
BEGIN;
TRUNCATE ev;
SELECT * FROM pgcohere.pending();
ROLLBACK;

-- dedup and the per-transaction limit: past max_keys_per_xact, coarse patterns
SET pgcohere.max_keys_per_xact = 4;
BEGIN;
INSERT INTO kv SELECT 'x' || g, g FROM generate_series(1, 10) g;
UPDATE kv SET v = v WHERE k = 'x1';
SELECT * FROM pgcohere.pending();
ROLLBACK;
RESET pgcohere.max_keys_per_xact;

DROP TABLE kv, ev;
DROP EXTENSION pgcohere;
