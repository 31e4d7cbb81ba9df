-- pgcohere 1.0: cache invalidation keys published with NOTIFY at commit.
\echo Use "CREATE EXTENSION pgcohere" to load this file. \quit

-- One row per key template. An extension configuration table: pg_dump keeps its rows,
-- and the triggers on watched tables are dumped with the tables.
CREATE TABLE pgcohere.rules (
    tbl        regclass    NOT NULL,
    template   text        NOT NULL,
    tag        text        NOT NULL,  -- table:<schema>.<table>, kept current across renames
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tbl, template)
);
SELECT pg_catalog.pg_extension_config_dump('pgcohere.rules', '');
COMMENT ON TABLE pgcohere.rules IS 'pgcohere key templates per watched table';

-- Families of keys that only pgcohere.invalidate() publishes (no rule renders them), as
-- glob patterns written like key templates. A resync purges them with the rules' coarse
-- patterns (coarse_patterns()). An extension configuration table, like rules.
CREATE TABLE pgcohere.declared_keys (
    pattern    text        PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);
SELECT pg_catalog.pg_extension_config_dump('pgcohere.declared_keys', '');
COMMENT ON TABLE pgcohere.declared_keys IS 'pgcohere key families invalidated by hand (pgcohere.invalidate)';

-- Sequence numbers of direct-mode notifications (per database). The epoch of direct
-- mode is the server start time, so it survives DROP EXTENSION + CREATE EXTENSION: the
-- sequence starts at the install time in microseconds since the Unix epoch, so that the
-- seqs of a re-created extension are greater than every seq published before (a forward
-- gap, on which the daemon resyncs, never a replay).
CREATE SEQUENCE pgcohere.seq;
SELECT pg_catalog.setval('pgcohere.seq',
    (EXTRACT(epoch FROM pg_catalog.clock_timestamp()) * 1000000)::bigint);

CREATE FUNCTION pgcohere.row_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'pgcohere_row_trigger' LANGUAGE C;
CREATE FUNCTION pgcohere.truncate_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'pgcohere_truncate_trigger' LANGUAGE C;

CREATE FUNCTION pgcohere._check_templates(tbl regclass, templates text[]) RETURNS void
    AS 'MODULE_PATHNAME', 'pgcohere_check_templates' LANGUAGE C STRICT;
CREATE FUNCTION pgcohere._check_key_families(patterns text[]) RETURNS void
    AS 'MODULE_PATHNAME', 'pgcohere_check_key_families' LANGUAGE C STRICT;
CREATE FUNCTION pgcohere._reload_rules(tbl regclass) RETURNS void
    AS 'MODULE_PATHNAME', 'pgcohere_reload_rules' LANGUAGE C STRICT;
CREATE FUNCTION pgcohere._queue_coarse(templates text[], tag text) RETURNS void
    AS 'MODULE_PATHNAME', 'pgcohere_queue_coarse' LANGUAGE C;

CREATE FUNCTION pgcohere.coarse_pattern(template text) RETURNS text
    AS 'MODULE_PATHNAME', 'pgcohere_coarse_pattern' LANGUAGE C IMMUTABLE STRICT;

CREATE FUNCTION pgcohere.invalidate(VARIADIC keys text[]) RETURNS integer
    AS 'MODULE_PATHNAME', 'pgcohere_invalidate' LANGUAGE C STRICT;

CREATE FUNCTION pgcohere.stats(
    OUT mode text,
    OUT keys_queued bigint,
    OUT keys_published bigint,
    OUT notifications bigint,
    OUT coarsened_xacts bigint,
    OUT ring_overflows bigint,
    OUT notify_failures bigint,
    OUT signature_failures bigint)
    AS 'MODULE_PATHNAME', 'pgcohere_stats' LANGUAGE C;

-- table:<schema>.<table>, the coarse tag of a table.
CREATE FUNCTION pgcohere.table_tag(tbl regclass) RETURNS text
    LANGUAGE sql STABLE STRICT
    AS $$ SELECT 'table:' || n.nspname || '.' || c.relname
          FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE c.oid = tbl $$;

-- Statement triggers do not propagate to partitions, so TRUNCATE of one partition
-- needs its own trigger: one on tbl and on every table in its partition tree.
CREATE FUNCTION pgcohere._attach_truncate_triggers(tbl regclass) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pgcohere
    AS $$
DECLARE
    part regclass;
BEGIN
    FOR part IN SELECT t.relid FROM pg_partition_tree(tbl) t
                UNION SELECT tbl
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = part AND tgname = 'pgcohere_truncate') THEN
            EXECUTE format('CREATE TRIGGER pgcohere_truncate AFTER TRUNCATE ON %s '
                           'FOR EACH STATEMENT EXECUTE FUNCTION pgcohere.truncate_trigger()', part);
        END IF;
    END LOOP;
END
$$;

CREATE FUNCTION pgcohere.watch(tbl regclass, keys text[]) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pgcohere
    AS $$
BEGIN
    -- serializes concurrent watch() calls on one table (CREATE TRIGGER takes it anyway)
    EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', tbl);
    PERFORM pgcohere._check_templates(tbl, keys);
    INSERT INTO pgcohere.rules (tbl, template, tag)
        SELECT tbl, k, pgcohere.table_tag(tbl) FROM unnest(keys) AS k
        ON CONFLICT DO NOTHING;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = tbl AND tgname = 'pgcohere_row') THEN
        EXECUTE format('CREATE TRIGGER pgcohere_row AFTER INSERT OR UPDATE OR DELETE ON %s '
                       'FOR EACH ROW EXECUTE FUNCTION pgcohere.row_trigger()', tbl);
    END IF;
    PERFORM pgcohere._attach_truncate_triggers(tbl);
END
$$;

-- Everything a resync purges: every rule's coarse pattern and table tag, and every
-- declared key family (its coarse pattern).
CREATE FUNCTION pgcohere.coarse_patterns() RETURNS SETOF text
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pgcohere
    AS $$
    SELECT pgcohere.coarse_pattern(template) FROM pgcohere.rules
    UNION
    SELECT tag FROM pgcohere.rules
    UNION
    SELECT pgcohere.coarse_pattern(pattern) FROM pgcohere.declared_keys
    ORDER BY 1
$$;

-- Declares families of keys that are invalidated by hand, so that every resync purges
-- them. Returns how many patterns were not declared before.
CREATE FUNCTION pgcohere.declare_keys(VARIADIC patterns text[]) RETURNS integer
    LANGUAGE plpgsql STRICT
    SET search_path = pg_catalog, pgcohere
    AS $$
DECLARE
    added integer;
BEGIN
    PERFORM pgcohere._check_key_families(patterns);
    INSERT INTO pgcohere.declared_keys (pattern)
        SELECT DISTINCT p FROM unnest(patterns) AS p
        ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS added = ROW_COUNT;
    RETURN added;
END
$$;

-- Removes declared key families; returns how many were removed.
CREATE FUNCTION pgcohere.undeclare_keys(VARIADIC patterns text[]) RETURNS integer
    LANGUAGE plpgsql STRICT
    SET search_path = pg_catalog, pgcohere
    AS $$
DECLARE
    removed integer;
BEGIN
    DELETE FROM pgcohere.declared_keys d WHERE d.pattern = ANY (patterns);
    GET DIAGNOSTICS removed = ROW_COUNT;
    IF removed > 0 THEN
        PERFORM pgcohere._reload_rules('pgcohere.declared_keys');
    END IF;
    RETURN removed;
END
$$;

-- Removes the given templates of tbl (all of them when keys is NULL); the triggers go
-- with the last one. Returns the number of templates removed.
CREATE FUNCTION pgcohere.unwatch(tbl regclass, keys text[] DEFAULT NULL) RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pgcohere
    AS $$
DECLARE
    removed integer;
    part regclass;
BEGIN
    DELETE FROM pgcohere.rules r WHERE r.tbl = unwatch.tbl AND (keys IS NULL OR r.template = ANY (keys));
    GET DIAGNOSTICS removed = ROW_COUNT;
    IF NOT EXISTS (SELECT 1 FROM pgcohere.rules r WHERE r.tbl = unwatch.tbl) THEN
        EXECUTE format('DROP TRIGGER IF EXISTS pgcohere_row ON %s', tbl);
        FOR part IN SELECT p.relid FROM pg_partition_tree(tbl) p UNION SELECT tbl LOOP
            EXECUTE format('DROP TRIGGER IF EXISTS pgcohere_truncate ON %s', part);
        END LOOP;
    ELSE
        PERFORM pgcohere._reload_rules(tbl);
    END IF;
    RETURN removed;
END
$$;

-- DDL on watched tables. A dropped table publishes its rules' coarse patterns and tag,
-- and its rules go. An altered table (columns renamed, dropped, retyped; the table or
-- its schema renamed) publishes its coarse patterns and its old and new tags: cached
-- data derived from the old shape is purged, never left behind.
CREATE FUNCTION pgcohere._on_sql_drop() RETURNS event_trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pgcohere
    AS $$
DECLARE
    d record;
BEGIN
    FOR d IN SELECT DISTINCT o.objid FROM pg_event_trigger_dropped_objects() o
             WHERE o.classid = 'pg_catalog.pg_class'::regclass AND o.objsubid = 0
    LOOP
        PERFORM pgcohere._queue_coarse(ARRAY(SELECT r.template FROM pgcohere.rules r WHERE r.tbl = d.objid),
                                       (SELECT min(r.tag) FROM pgcohere.rules r WHERE r.tbl = d.objid))
            WHERE EXISTS (SELECT 1 FROM pgcohere.rules r WHERE r.tbl = d.objid);
        DELETE FROM pgcohere.rules r WHERE r.tbl = d.objid;
    END LOOP;
END
$$;

CREATE FUNCTION pgcohere._on_ddl_end() RETURNS event_trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pgcohere
    AS $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT r.tbl, min(r.tag) AS old_tag, array_agg(r.template) AS templates
             FROM pgcohere.rules r
             WHERE r.tbl::oid IN (SELECT c.objid FROM pg_event_trigger_ddl_commands() c
                                  WHERE c.classid = 'pg_catalog.pg_class'::regclass)
                OR r.tag IS DISTINCT FROM pgcohere.table_tag(r.tbl)
             GROUP BY r.tbl
    LOOP
        PERFORM pgcohere._queue_coarse(t.templates, t.old_tag);
        PERFORM pgcohere._queue_coarse(NULL, pgcohere.table_tag(t.tbl));
        UPDATE pgcohere.rules r SET tag = pgcohere.table_tag(t.tbl)
            WHERE r.tbl = t.tbl AND r.tag IS DISTINCT FROM pgcohere.table_tag(t.tbl);
    END LOOP;
    -- a disabled trigger would silently lose invalidations: refuse it
    IF EXISTS (SELECT 1 FROM pg_trigger g JOIN pgcohere.rules r ON r.tbl = g.tgrelid
               WHERE g.tgname IN ('pgcohere_row', 'pgcohere_truncate') AND g.tgenabled IN ('D', 'R')) THEN
        RAISE EXCEPTION 'pgcohere: the triggers of a watched table cannot be disabled'
            USING HINT = 'Use pgcohere.unwatch() to stop watching the table.';
    END IF;
    -- a partition created or attached later also needs the TRUNCATE trigger
    FOR t IN SELECT DISTINCT r.tbl FROM pgcohere.rules r JOIN pg_class c ON c.oid = r.tbl
             WHERE c.relkind = 'p'
    LOOP
        PERFORM pgcohere._attach_truncate_triggers(t.tbl);
    END LOOP;
END
$$;

CREATE EVENT TRIGGER pgcohere_sql_drop ON sql_drop EXECUTE FUNCTION pgcohere._on_sql_drop();
CREATE EVENT TRIGGER pgcohere_ddl_end ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'ALTER SCHEMA', 'CREATE TABLE')
    EXECUTE FUNCTION pgcohere._on_ddl_end();

-- Rules are readable by every role: row triggers fire as whoever writes the table.
GRANT USAGE ON SCHEMA pgcohere TO PUBLIC;
GRANT SELECT ON pgcohere.rules TO PUBLIC;
GRANT SELECT ON pgcohere.declared_keys TO PUBLIC;  -- invalidate() reads it, as any role
REVOKE ALL ON FUNCTION pgcohere.watch(regclass, text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgcohere.unwatch(regclass, text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgcohere.declare_keys(text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgcohere.undeclare_keys(text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgcohere._check_key_families(text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgcohere._check_templates(regclass, text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgcohere._queue_coarse(text[], text) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgcohere._reload_rules(regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgcohere._attach_truncate_triggers(regclass) FROM PUBLIC;

-- The entry lines (docs/protocol.md) the current transaction would publish at commit.
CREATE FUNCTION pgcohere.pending() RETURNS SETOF text
    AS 'MODULE_PATHNAME', 'pgcohere_pending' LANGUAGE C;
