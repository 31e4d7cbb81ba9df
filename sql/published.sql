-- pgcohere.published (read-your-writes): reported after a commit that published
-- invalidations, unchanged by a rollback or a commit that published nothing, growing,
-- never settable. Values differ between runs and modes: only their shape and order are checked.
CREATE EXTENSION pgcohere;
CREATE TABLE pub (id int PRIMARY KEY);
SELECT pgcohere.watch('pub', ARRAY['pub:{id}']);
SET pgcohere.published = '1 2';
INSERT INTO pub VALUES (1);
SELECT current_setting('pgcohere.published') ~ '^[0-9]+ [1-9][0-9]*$' AS reported;
SELECT current_setting('pgcohere.published') AS first \gset
BEGIN;
INSERT INTO pub VALUES (2);
ROLLBACK;
SELECT 1 AS publishes_nothing;
SELECT current_setting('pgcohere.published') = :'first' AS unchanged;
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
RESET pgcohere.publish_mode;
SELECT name, context FROM pg_settings WHERE name = 'pgcohere.published';
DROP TABLE pub;
DROP EXTENSION pgcohere;
