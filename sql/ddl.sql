-- DDL on watched tables never loses an invalidation
CREATE EXTENSION pgcohere;
SET pgcohere.publish_mode = direct;
CREATE SCHEMA app;
CREATE TABLE app.users (id int PRIMARY KEY, email text, team int);
SELECT pgcohere.watch('app.users', ARRAY['user:{id}', 'team:{team}:*']);
INSERT INTO app.users VALUES (1, 'a@x', 7);

-- renamed table: rules follow it (regclass); old and new tags and coarse patterns go out
BEGIN;
ALTER TABLE app.users RENAME TO members;
SELECT * FROM pgcohere.pending();
SELECT tbl, template, tag FROM pgcohere.rules ORDER BY 2;
UPDATE app.members SET email = 'b@x' WHERE id = 1;
SELECT * FROM pgcohere.pending();
COMMIT;

-- renamed schema: the tag follows
BEGIN;
ALTER SCHEMA app RENAME TO app2;
SELECT * FROM pgcohere.pending();
SELECT DISTINCT tag FROM pgcohere.rules;
ROLLBACK;

-- renamed column: coarse patterns at ALTER time; afterwards the placeholder is
-- widened to '*' (with a warning) until the rule is re-created
BEGIN;
ALTER TABLE app.members RENAME COLUMN team TO squad;
SELECT * FROM pgcohere.pending();
COMMIT;
BEGIN;
UPDATE app.members SET email = 'c@x' WHERE id = 1;
SELECT * FROM pgcohere.pending();
ROLLBACK;
SELECT pgcohere.unwatch('app.members', ARRAY['team:{team}:*']);
SELECT pgcohere.watch('app.members', ARRAY['team:{squad}:*']);
BEGIN;
UPDATE app.members SET email = 'd@x' WHERE id = 1;
SELECT * FROM pgcohere.pending();
ROLLBACK;

-- dropped column: same as renamed
BEGIN;
ALTER TABLE app.members DROP COLUMN squad;
SELECT * FROM pgcohere.pending();
UPDATE app.members SET email = 'e@x' WHERE id = 1;
SELECT * FROM pgcohere.pending();
ROLLBACK;

-- the triggers cannot be disabled (that would lose invalidations silently)
ALTER TABLE app.members DISABLE TRIGGER pgcohere_row;
ALTER TABLE app.members DISABLE TRIGGER ALL;
ALTER TABLE app.members ENABLE REPLICA TRIGGER pgcohere_row;  -- fires only in replica mode
ALTER TABLE app.members ENABLE ALWAYS TRIGGER pgcohere_row;   -- fires everywhere: fine

-- dropped table: coarse patterns and tag published, rules removed
BEGIN;
DROP TABLE app.members;
SELECT * FROM pgcohere.pending();
SELECT count(*) FROM pgcohere.rules;
COMMIT;
SELECT * FROM pgcohere.coarse_patterns();

DROP SCHEMA app;
DROP EXTENSION pgcohere;
