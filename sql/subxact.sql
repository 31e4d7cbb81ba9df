-- savepoints: a rolled-back savepoint drops exactly its keys; a released one keeps them
CREATE EXTENSION pgcohere;
SET pgcohere.publish_mode = direct;
CREATE TABLE t (id int PRIMARY KEY);
SELECT pgcohere.watch('t', ARRAY['t:{id}']);

BEGIN;
INSERT INTO t VALUES (1);
SAVEPOINT a;
INSERT INTO t VALUES (2);
SAVEPOINT b;
INSERT INTO t VALUES (3);
ROLLBACK TO SAVEPOINT b;
SELECT * FROM pgcohere.pending();
RELEASE SAVEPOINT a;
SAVEPOINT c;
INSERT INTO t VALUES (4);
ROLLBACK TO SAVEPOINT c;
INSERT INTO t VALUES (5);
SELECT * FROM pgcohere.pending();
ROLLBACK;

-- a key first seen in the outer transaction survives the rollback of a savepoint
-- that touched the same row again
BEGIN;
INSERT INTO t VALUES (1);
SAVEPOINT s;
UPDATE t SET id = id WHERE id = 1;
INSERT INTO t VALUES (9);
ROLLBACK TO SAVEPOINT s;
SELECT * FROM pgcohere.pending();
ROLLBACK;

-- an error inside a PL/pgSQL exception block is a subtransaction too
BEGIN;
DO $$
BEGIN
    INSERT INTO t VALUES (20);
    BEGIN
        INSERT INTO t VALUES (21);
        INSERT INTO t VALUES (20);  -- unique violation
    EXCEPTION WHEN unique_violation THEN
        NULL;
    END;
END $$;
SELECT * FROM pgcohere.pending();
ROLLBACK;

-- PREPARE TRANSACTION with pending invalidations fails clearly (nothing is lost:
-- the transaction rolls back)
BEGIN;
INSERT INTO t VALUES (30);
PREPARE TRANSACTION 'pgc_2pc';
ROLLBACK PREPARED 'pgc_2pc';  -- fails: nothing was prepared (and cleans up if it was)
SELECT count(*) FROM t WHERE id = 30;

DROP TABLE t;
DROP EXTENSION pgcohere;
