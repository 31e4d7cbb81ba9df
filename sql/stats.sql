-- stats() and table_tag(): counters move with committed work (cluster-wide when
-- preloaded, per backend otherwise: only differences are checked here)
CREATE EXTENSION pgcohere;
SET pgcohere.publish_mode = direct;
CREATE TABLE s (id int PRIMARY KEY);
SELECT pgcohere.watch('s', ARRAY['s:{id}']);
SELECT pgcohere.table_tag('s');
SELECT mode IN ('direct', 'preload') AS mode_ok, signature_failures FROM pgcohere.stats();
CREATE TEMP TABLE before AS SELECT * FROM pgcohere.stats();
INSERT INTO s VALUES (1), (2);
BEGIN;
INSERT INTO s VALUES (3);
ROLLBACK;
SELECT s.keys_queued - b.keys_queued >= 3 AS queued,
       s.keys_published - b.keys_published >= 3 AS published,
       s.notifications - b.notifications >= 1 AS notified,
       s.ring_overflows - b.ring_overflows >= 0 AS overflows_counted
FROM pgcohere.stats() s, before b;
-- a coarsened transaction is counted
SET pgcohere.max_keys_per_xact = 1;
DROP TABLE before;
CREATE TEMP TABLE before AS SELECT * FROM pgcohere.stats();
INSERT INTO s VALUES (10), (11), (12);
SELECT s.coarsened_xacts - b.coarsened_xacts >= 1 AS coarsened FROM pgcohere.stats() s, before b;
RESET pgcohere.max_keys_per_xact;
DROP TABLE s;
DROP EXTENSION pgcohere;
