-- The catalog's version: one number that goes up in the same transaction as every change to
-- what the storefront shows or a quote is priced from (products, variants, decoration
-- methods and the products they may be used on, discount rules), whoever makes the change:
-- the admin API or a person in psql.
--
-- API instances compare their cached catalog with the primary's version at most every
-- CATALOG_VERSION_CHECK_MS and reload what is older; a reload reads a replica only when the
-- replica's own copy of this row has caught up (see docs/ARCHITECTURE.md, "Caches").
--
-- Statement-level triggers with transition tables: one bump per statement that changed at
-- least one row, whatever the number of rows (a statement that matched nothing, such as an
-- update of an unknown id or a re-run of the idempotent seed, bumps nothing). The UPDATE
-- locks the single row, so catalog writes commit one after the other and versions are handed
-- out in commit order; catalog writes are rare staff actions, never on the checkout path.
CREATE TABLE catalog_version (
    -- TRUE only: one row.
    id         BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    version    BIGINT NOT NULL CHECK (version >= 1),
    changed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO catalog_version (version) VALUES (1);

CREATE FUNCTION bump_catalog_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE catalog_version SET version = version + 1, changed_at = now() WHERE id;
    RETURN NULL;
END;
$$;

-- For INSERT, UPDATE and DELETE: `changed` is the statement's transition table.
CREATE FUNCTION bump_catalog_version_if_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM changed) THEN
        UPDATE catalog_version SET version = version + 1, changed_at = now() WHERE id;
    END IF;
    RETURN NULL;
END;
$$;

DO $$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['products', 'variants', 'decoration_methods', 'decoration_method_products',
                             'price_rules']
    LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %I REFERENCING NEW TABLE AS changed '
                       'FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version_if_changed()',
                       t || '_inserted_bump_catalog_version', t);
        EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %I REFERENCING NEW TABLE AS changed '
                       'FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version_if_changed()',
                       t || '_updated_bump_catalog_version', t);
        EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %I REFERENCING OLD TABLE AS changed '
                       'FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version_if_changed()',
                       t || '_deleted_bump_catalog_version', t);
        EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version()',
                       t || '_truncated_bump_catalog_version', t);
    END LOOP;
END;
$$;
