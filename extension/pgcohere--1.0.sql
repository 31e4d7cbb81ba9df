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

-- Query-cache policies (docs/cache.md): one row per cache-enabled table. ttl NULL:
-- pgcohered's [cache] default_ttl; "by": columns whose values tag cached entries (row
-- granularity). An extension configuration table, like rules.
CREATE TABLE pgcohere.cache_policies (
    tbl  regclass PRIMARY KEY,
    ttl  interval,
    "by" text[]
);
SELECT pg_catalog.pg_extension_config_dump('pgcohere.cache_policies', '');
COMMENT ON TABLE pgcohere.cache_policies IS 'pgcohere query-cache policies per table (cache_table)';

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

CREATE FUNCTION pgcohere._check_cache_policy(tbl regclass, ttl interval, "by" text[]) RETURNS void
    AS 'MODULE_PATHNAME', 'pgcohere_check_cache_policy' LANGUAGE C;
CREATE FUNCTION pgcohere._queue_cache_change(tbl oid, policy_changed boolean) RETURNS void
    AS 'MODULE_PATHNAME', 'pgcohere_queue_cache_change' LANGUAGE C STRICT;
CREATE FUNCTION pgcohere._by_type(typ oid, coll oid) RETURNS text
    AS 'MODULE_PATHNAME', 'pgcohere_by_type' LANGUAGE C STABLE STRICT;

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

-- The triggers of tbl and of its partitions follow pgcohere.rules and
-- pgcohere.cache_policies: a relation needs them while it or an ancestor has a rule or a
-- cache policy. The row trigger of a partitioned table is cloned to its partitions by
-- PostgreSQL; TRUNCATE triggers are per relation. Called after every change of either.
CREATE FUNCTION pgcohere._sync_triggers(tbl regclass) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pgcohere
    AS $$
DECLARE
    r record;
    row_parent oid;
BEGIN
    FOR r IN SELECT t.relid, c.relkind,
                    EXISTS (SELECT 1 FROM (SELECT a.relid FROM pg_partition_ancestors(t.relid) a
                                           UNION SELECT t.relid) a
                            WHERE a.relid IN (SELECT x.tbl FROM pgcohere.rules x
                                              UNION SELECT p.tbl FROM pgcohere.cache_policies p)) AS needed
             FROM (SELECT p.relid, p.level FROM pg_partition_tree(tbl) p UNION SELECT tbl, 0) t
             JOIN pg_class c ON c.oid = t.relid
             ORDER BY t.level, t.relid
    LOOP
        -- read now: a trigger created on a parent earlier in this loop is cloned here
        row_parent := (SELECT g.tgparentid FROM pg_trigger g WHERE g.tgrelid = r.relid AND g.tgname = 'pgcohere_row');
        IF r.needed AND row_parent IS NULL THEN
            IF r.relkind = 'p' THEN
                -- a partition's own trigger would collide with the clone of this one
                PERFORM pgcohere._drop_own_row_triggers(r.relid);
            END IF;
            EXECUTE format('CREATE TRIGGER pgcohere_row AFTER INSERT OR UPDATE OR DELETE ON %s '
                           'FOR EACH ROW EXECUTE FUNCTION pgcohere.row_trigger()', r.relid::regclass);
        ELSIF NOT r.needed AND row_parent = 0 THEN
            EXECUTE format('DROP TRIGGER pgcohere_row ON %s', r.relid::regclass);
        END IF;
        IF r.needed THEN
            IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = r.relid AND tgname = 'pgcohere_truncate') THEN
                EXECUTE format('CREATE TRIGGER pgcohere_truncate AFTER TRUNCATE ON %s '
                               'FOR EACH STATEMENT EXECUTE FUNCTION pgcohere.truncate_trigger()', r.relid::regclass);
            END IF;
        ELSE
            EXECUTE format('DROP TRIGGER IF EXISTS pgcohere_truncate ON %s', r.relid::regclass);
        END IF;
    END LOOP;
END
$$;

CREATE FUNCTION pgcohere._drop_own_row_triggers(tbl regclass) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pgcohere
    AS $$
DECLARE
    part regclass;
BEGIN
    FOR part IN SELECT g.tgrelid FROM pg_partition_tree(tbl) p
                JOIN pg_trigger g ON g.tgrelid = p.relid AND g.tgname = 'pgcohere_row' AND g.tgparentid = 0
                WHERE p.relid <> tbl
    LOOP
        EXECUTE format('DROP TRIGGER pgcohere_row ON %s', part);
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
    PERFORM pgcohere._sync_triggers(tbl);
END
$$;

-- Makes tbl cache-enabled (or changes its policy): queries that read only cache-enabled
-- tables may be answered by pgcohered's query cache. ttl NULL: [cache] default_ttl.
-- "by": columns whose values tag entries, so that a write purges only the entries of
-- the values it changed. Publishes, at commit, "c <oid>", tbl:<oid> and all:<oid>.
CREATE FUNCTION pgcohere.cache_table(tbl regclass, ttl interval DEFAULT NULL, "by" text[] DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pgcohere
    AS $$
BEGIN
    PERFORM pgcohere._check_cache_policy(tbl, ttl, "by");
    -- serializes concurrent cache_table() calls on one table and its writers' triggers
    EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', tbl);
    INSERT INTO pgcohere.cache_policies AS p (tbl, ttl, "by")
        VALUES (tbl, ttl, NULLIF("by", '{}'))
        ON CONFLICT ON CONSTRAINT cache_policies_pkey
        DO UPDATE SET ttl = EXCLUDED.ttl, "by" = EXCLUDED."by";
    PERFORM pgcohere._sync_triggers(tbl);
    PERFORM pgcohere._queue_cache_change(tbl, true);
END
$$;

-- Removes tbl's cache policy; returns false if it had none. Publishes, at commit,
-- "c <oid>", tbl:<oid> and all:<oid>.
CREATE FUNCTION pgcohere.uncache_table(tbl regclass) RETURNS boolean
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pgcohere
    AS $$
BEGIN
    EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', tbl);
    DELETE FROM pgcohere.cache_policies p WHERE p.tbl = uncache_table.tbl;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM pgcohere._sync_triggers(tbl);
    PERFORM pgcohere._queue_cache_change(tbl, true);
    RETURN true;
END
$$;

-- What pgcohered needs to resolve table names and decide (docs/cache.md): one row per
-- relation whose name equals the name of some cache-enabled table, in any schema
-- (pg_catalog and temporary schemas included, so that shadowing is visible).
CREATE FUNCTION pgcohere.cache_catalog(
    OUT relid oid, OUT nspname name, OUT relname name, OUT cached boolean, OUT ttl_ms bigint,
    OUT by_columns text[], OUT by_types text[], OUT rls boolean, OUT temp boolean)
    RETURNS SETOF record
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pgcohere
    AS $$
    SELECT c.oid, n.nspname, c.relname, p.tbl IS NOT NULL,
           ceil(EXTRACT(epoch FROM p.ttl) * 1000)::bigint,
           b.columns, b.types,
           c.relrowsecurity, c.relpersistence = 't'
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pgcohere.cache_policies p ON p.tbl = c.oid
    -- the "by" columns that exist, in policy order (a renamed or dropped one is left out:
    -- no row tag is published for it)
    LEFT JOIN LATERAL (
        SELECT array_agg(a.attname::text ORDER BY u.ord) AS columns,
               array_agg(pgcohere._by_type(a.atttypid, a.attcollation) ORDER BY u.ord) AS types
        FROM unnest(p."by") WITH ORDINALITY AS u(col, ord)
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = u.col AND a.attnum > 0 AND NOT a.attisdropped
    ) b ON p."by" IS NOT NULL
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
      AND c.relname IN (SELECT x.relname FROM pgcohere.cache_policies q JOIN pg_class x ON x.oid = q.tbl)
    ORDER BY c.relname, n.nspname
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
BEGIN
    DELETE FROM pgcohere.rules r WHERE r.tbl = unwatch.tbl AND (keys IS NULL OR r.template = ANY (keys));
    GET DIAGNOSTICS removed = ROW_COUNT;
    -- the triggers go with the last rule, unless a cache policy still needs them
    PERFORM pgcohere._sync_triggers(tbl);
    PERFORM pgcohere._reload_rules(tbl);
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
    partition_dropped boolean;
BEGIN
    -- A dropped partition takes its rows out of its ancestors' results, but its parent
    -- is gone from the catalogs by now. Its clone of the parent's pgcohere_row trigger
    -- is dropped with it: that betrays a partition of a watched or cache-enabled table.
    SELECT EXISTS (
        SELECT 1 FROM pg_event_trigger_dropped_objects() g
        WHERE g.object_type = 'trigger' AND g.object_identity LIKE 'pgcohere\_row on %'
          AND NOT EXISTS (SELECT 1 FROM pg_event_trigger_dropped_objects() t
                          WHERE t.classid = 'pg_catalog.pg_class'::regclass AND t.objsubid = 0
                            AND g.object_identity = 'pgcohere_row on ' || t.object_identity
                            AND (t.objid IN (SELECT r.tbl FROM pgcohere.rules r)
                                 OR t.objid IN (SELECT p.tbl FROM pgcohere.cache_policies p))))
        INTO partition_dropped;
    FOR d IN SELECT DISTINCT o.objid FROM pg_event_trigger_dropped_objects() o
             WHERE o.classid = 'pg_catalog.pg_class'::regclass AND o.objsubid = 0
    LOOP
        PERFORM pgcohere._queue_coarse(ARRAY(SELECT r.template FROM pgcohere.rules r WHERE r.tbl = d.objid),
                                       (SELECT min(r.tag) FROM pgcohere.rules r WHERE r.tbl = d.objid))
            WHERE EXISTS (SELECT 1 FROM pgcohere.rules r WHERE r.tbl = d.objid);
        DELETE FROM pgcohere.rules r WHERE r.tbl = d.objid;
        PERFORM pgcohere._queue_cache_change(d.objid, true)
            WHERE EXISTS (SELECT 1 FROM pgcohere.cache_policies p WHERE p.tbl = d.objid);
        DELETE FROM pgcohere.cache_policies p WHERE p.tbl = d.objid;
    END LOOP;
    -- Coarse and rare: every cache-enabled partitioned table may have lost rows.
    IF partition_dropped THEN
        PERFORM pgcohere._queue_cache_change(p.tbl, false)
        FROM pgcohere.cache_policies p JOIN pg_class c ON c.oid = p.tbl
        WHERE c.relkind = 'p';
    END IF;
    -- A dropped relation named like a cache-enabled table may have shadowed it: the
    -- daemon's name resolution changes.
    PERFORM pgcohere._queue_cache_change(p.tbl, true)
    FROM pgcohere.cache_policies p JOIN pg_class c ON c.oid = p.tbl
    WHERE c.relname IN (SELECT o.object_name FROM pg_event_trigger_dropped_objects() o
                        WHERE o.classid = 'pg_catalog.pg_class'::regclass AND o.objsubid = 0);
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
    -- Cache-enabled tables: DDL on one (ALTER TABLE of any kind: columns, types, RENAME,
    -- SET SCHEMA, ATTACH/DETACH PARTITION, row security) or on its schema changes what
    -- its cached entries hold or what the daemon's catalog says; so does a relation
    -- created, renamed or moved under the same name (it may shadow the table in a
    -- search_path). Publish "c <oid>", tbl:<oid> and all:<oid> for each.
    FOR t IN SELECT p.tbl, c.relname, p."by"
             FROM pgcohere.cache_policies p JOIN pg_class c ON c.oid = p.tbl
             WHERE p.tbl::oid IN (SELECT d.objid FROM pg_event_trigger_ddl_commands() d
                                  WHERE d.classid = 'pg_catalog.pg_class'::regclass)
                OR c.relnamespace IN (SELECT d.objid FROM pg_event_trigger_ddl_commands() d
                                      WHERE d.classid = 'pg_catalog.pg_namespace'::regclass)
                OR c.relname IN (SELECT x.relname FROM pg_class x
                                 WHERE x.oid IN (SELECT d.objid FROM pg_event_trigger_ddl_commands() d
                                                 WHERE d.classid = 'pg_catalog.pg_class'::regclass))
    LOOP
        PERFORM pgcohere._queue_cache_change(t.tbl, true);
        IF EXISTS (SELECT 1 FROM unnest(t."by") AS u(col)
                   WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = t.tbl AND a.attname = u.col
                                     AND a.attnum > 0 AND NOT a.attisdropped)) THEN
            RAISE WARNING 'pgcohere: the cache policy of "%" names missing "by" column(s): their row tags are no longer published', t.tbl
                USING HINT = 'Call pgcohere.cache_table() again with the new column names.';
        END IF;
    END LOOP;
    -- REVOKE on tables or schemas: a role may have lost access to entries cached for it
    -- (the cache key holds the role, not its privileges), and the command does not say
    -- which tables it touched: every cache-enabled table's entries go (rare, coarse).
    IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() d
               WHERE d.command_tag = 'REVOKE' AND d.object_type IN ('TABLE', 'SCHEMA')) THEN
        PERFORM pgcohere._queue_cache_change(p.tbl, false) FROM pgcohere.cache_policies p;
    END IF;
    -- a disabled trigger would silently lose invalidations: refuse it
    IF EXISTS (SELECT 1 FROM pg_trigger g
               JOIN (SELECT r.tbl FROM pgcohere.rules r UNION SELECT p.tbl FROM pgcohere.cache_policies p) w
                 ON w.tbl = g.tgrelid
               WHERE g.tgname IN ('pgcohere_row', 'pgcohere_truncate') AND g.tgenabled IN ('D', 'R')) THEN
        RAISE EXCEPTION 'pgcohere: the triggers of a watched or cache-enabled table cannot be disabled'
            USING HINT = 'Use pgcohere.unwatch() or pgcohere.uncache_table() instead.';
    END IF;
    -- a query on a cache-enabled table would also read an inheritance child, whose
    -- writes fire only the child's triggers
    IF EXISTS (SELECT 1 FROM pg_inherits i
               JOIN pgcohere.cache_policies p ON p.tbl = i.inhparent
               JOIN pg_class c ON c.oid = i.inhparent AND c.relkind = 'r') THEN
        RAISE EXCEPTION 'pgcohere: a cache-enabled table cannot have inheritance children'
            USING HINT = 'Use pgcohere.uncache_table() first, or a partitioned table.';
    END IF;
    -- a partition created or attached later also needs the TRUNCATE trigger. Only below
    -- a parent that has its own: while pg_dump's output is restored, the rules and
    -- policies are loaded before the triggers, which it creates itself afterwards.
    FOR t IN SELECT w.tbl
             FROM (SELECT r.tbl FROM pgcohere.rules r UNION SELECT p.tbl FROM pgcohere.cache_policies p) w
             JOIN pg_class c ON c.oid = w.tbl AND c.relkind = 'p'
             WHERE EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = w.tbl AND g.tgname = 'pgcohere_truncate')
    LOOP
        PERFORM pgcohere._attach_truncate_triggers(t.tbl);
    END LOOP;
END
$$;

CREATE EVENT TRIGGER pgcohere_sql_drop ON sql_drop EXECUTE FUNCTION pgcohere._on_sql_drop();
-- Besides DDL on watched tables: every command that can create, rename or move a
-- relation that shadows a cache-enabled table, and REVOKE.
CREATE EVENT TRIGGER pgcohere_ddl_end ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'ALTER SCHEMA', 'CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO',
                 'CREATE VIEW', 'ALTER VIEW', 'CREATE MATERIALIZED VIEW', 'ALTER MATERIALIZED VIEW',
                 'CREATE FOREIGN TABLE', 'ALTER FOREIGN TABLE', 'CREATE SEQUENCE', 'ALTER SEQUENCE',
                 'REVOKE')
    EXECUTE FUNCTION pgcohere._on_ddl_end();

-- Rules are readable by every role: row triggers fire as whoever writes the table.
GRANT USAGE ON SCHEMA pgcohere TO PUBLIC;
GRANT SELECT ON pgcohere.rules TO PUBLIC;
GRANT SELECT ON pgcohere.declared_keys TO PUBLIC;  -- invalidate() reads it, as any role
GRANT SELECT ON pgcohere.cache_policies TO PUBLIC;  -- row triggers and cache_catalog() read it, as any role
REVOKE ALL ON FUNCTION pgcohere.cache_table(regclass, interval, text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgcohere.uncache_table(regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgcohere._check_cache_policy(regclass, interval, text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgcohere._queue_cache_change(oid, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgcohere._sync_triggers(regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgcohere._drop_own_row_triggers(regclass) FROM PUBLIC;
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
