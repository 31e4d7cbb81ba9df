-- pgcohere.published (read-your-writes): reported after a commit that published something
-- the query cache depends on (a cache-enabled table's tags), unchanged by a rollback, by a
-- commit that published nothing, and by one that published only application keys (no cache
-- entry depends on those); growing, never settable. Values differ between runs and modes:
-- only their shape and order are checked.
CREATE EXTENSION pgcohere;
CREATE TABLE pub (id int PRIMARY KEY);
SELECT pgcohere.cache_table('pub');
CREATE TABLE keyed (id int PRIMARY KEY);
SELECT pgcohere.watch('keyed', ARRAY['keyed:{id}']);
SET pgcohere.published = '1 2';
INSERT INTO pub VALUES (1);
SELECT current_setting('pgcohere.published') ~ '^[0-9]+ [1-9][0-9]*$' AS reported;
SELECT current_setting('pgcohere.published') AS first \gset
BEGIN;
INSERT INTO pub VALUES (2);
ROLLBACK;
SELECT 1 AS publishes_nothing;
SELECT current_setting('pgcohere.published') = :'first' AS unchanged;
INSERT INTO keyed VALUES (1);
SELECT current_setting('pgcohere.published') = :'first' AS unchanged_by_keys_only;
INSERT INTO pub VALUES (3);
SELECT split_part(current_setting('pgcohere.published'), ' ', 1) = split_part(:'first', ' ', 1) AS same_epoch,
       split_part(current_setting('pgcohere.published'), ' ', 2)::numeric
         > split_part(:'first', ' ', 2)::numeric AS grows;
-- the direct path in a preloaded cluster too (there: a marker in the ring)
SET pgcohere.publish_mode = direct;
SELECT current_setting('pgcohere.published') AS second \gset
INSERT INTO pub VALUES (4);
SELECT split_part(current_setting('pgcohere.published'), ' ', 2)::numeric
         > split_part(:'second', ' ', 2)::numeric AS grows_direct;
SELECT current_setting('pgcohere.published') AS third \gset
INSERT INTO keyed VALUES (2);
SELECT current_setting('pgcohere.published') = :'third' AS unchanged_by_keys_only_direct;
RESET pgcohere.publish_mode;
SELECT name, context FROM pg_settings WHERE name = 'pgcohere.published';
DROP TABLE pub, keyed;
DROP EXTENSION pgcohere;
