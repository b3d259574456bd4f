-- Stolen Tee schema, version 1: the whole domain of ../docs/ARCHITECTURE.md.
--
-- Conventions
--   * UUID primary keys (gen_random_uuid(), built into PostgreSQL >= 13).
--   * created_at / updated_at on every table; updated_at is maintained by a trigger so no
--     code path can forget it.
--   * Money is integer cents in BIGINT columns named *_cents. Never NUMERIC, never floats.
--   * Enumerations are TEXT with CHECK constraints: cheaper to evolve than CREATE TYPE.
--   * Emails are stored lower-cased (CHECK) so the UNIQUE constraint means what it says.

CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

-- Accounts: customers with saved designs, and staff.
CREATE TABLE users (
    id               UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    email            TEXT NOT NULL UNIQUE CHECK (email = lower(email) AND email LIKE '%_@_%'),
    -- NULL for accounts that only ever signed in through Supabase (Google).
    password_hash    TEXT,
    supabase_user_id TEXT UNIQUE,
    name             TEXT,
    role             TEXT NOT NULL DEFAULT 'customer'
                     CHECK (role IN ('customer', 'fulfillment', 'admin')),
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Checkout identity: guest-first, found or created by email at checkout.
CREATE TABLE customers (
    id         UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    email      TEXT NOT NULL UNIQUE CHECK (email = lower(email) AND email LIKE '%_@_%'),
    name       TEXT,
    phone      TEXT,
    addresses  JSONB NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(addresses) = 'array'),
    user_id    UUID REFERENCES users (id) ON DELETE SET NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE products (
    id                UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    slug              TEXT NOT NULL UNIQUE
                      CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND length(slug) <= 100),
    title             TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description       TEXT NOT NULL DEFAULT '',
    images            JSONB NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(images) = 'array'),
    materials         TEXT,
    weight_grams      INTEGER CHECK (weight_grams > 0),
    country_of_origin TEXT CHECK (country_of_origin ~ '^[A-Z]{2}$'),
    status            TEXT NOT NULL DEFAULT 'draft'
                      CHECK (status IN ('active', 'draft', 'archived')),
    sort_order        INTEGER NOT NULL DEFAULT 0,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- The storefront lists only active products, in display order.
CREATE INDEX products_active_order_idx ON products (sort_order, title) WHERE status = 'active';

CREATE TABLE variants (
    id               UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    product_id       UUID NOT NULL REFERENCES products (id) ON DELETE RESTRICT,
    color            TEXT NOT NULL CHECK (length(color) BETWEEN 1 AND 50),
    size             TEXT NOT NULL CHECK (length(size) BETWEEN 1 AND 10),
    sku              TEXT NOT NULL UNIQUE CHECK (length(sku) BETWEEN 1 AND 64),
    -- What a blank costs us; never sent to the storefront.
    base_cost_cents  BIGINT NOT NULL CHECK (base_cost_cents >= 0),
    base_price_cents BIGINT NOT NULL CHECK (base_price_cents >= 0),
    stock_level      INTEGER NOT NULL DEFAULT 0 CHECK (stock_level >= 0),
    image_url        TEXT,
    sort_order       INTEGER NOT NULL DEFAULT 0,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Also serves "variants of a product" lookups (leading column).
    UNIQUE (product_id, color, size)
);

CREATE TABLE decoration_methods (
    id                      UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name                    TEXT NOT NULL UNIQUE CHECK (name ~ '^[a-z][a-z0-9_]{0,49}$'),
    display_name            TEXT NOT NULL,
    -- TRUE: usable on every product; FALSE: only on the products listed in
    -- decoration_method_products (a join table keeps the references honest).
    applies_to_all_products BOOLEAN NOT NULL DEFAULT TRUE,
    -- Integer cents and basis points; parsed by the domain crate (PricingRules).
    pricing_rules           JSONB NOT NULL CHECK (jsonb_typeof(pricing_rules) = 'object'),
    file_requirements       JSONB NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(file_requirements) = 'object'),
    status                  TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
    sort_order              INTEGER NOT NULL DEFAULT 0,
    created_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at              TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE decoration_method_products (
    method_id  UUID NOT NULL REFERENCES decoration_methods (id) ON DELETE CASCADE,
    product_id UUID NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (method_id, product_id)
);
CREATE INDEX decoration_method_products_product_idx ON decoration_method_products (product_id);

-- Discounts. A percentage is in basis points (1000 = 10 %); a fixed amount is cents off
-- the quote's subtotal. Global rules have no entity.
CREATE TABLE price_rules (
    id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name          TEXT NOT NULL UNIQUE,
    scope         TEXT NOT NULL CHECK (scope IN ('product', 'method', 'global')),
    entity_id     UUID,
    min_qty       INTEGER NOT NULL DEFAULT 1 CHECK (min_qty >= 1),
    max_qty       INTEGER CHECK (max_qty >= min_qty),
    discount_type TEXT NOT NULL CHECK (discount_type IN ('percentage', 'fixed_amount')),
    value         BIGINT NOT NULL CHECK (value >= 0),
    active        BOOLEAN NOT NULL DEFAULT TRUE,
    priority      INTEGER NOT NULL DEFAULT 0,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((scope = 'global') = (entity_id IS NULL)),
    CHECK (discount_type <> 'percentage' OR value <= 10000)
);
CREATE INDEX price_rules_active_idx ON price_rules (scope, entity_id) WHERE active;

CREATE TABLE orders (
    id                UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    order_number      TEXT NOT NULL UNIQUE CHECK (order_number ~ '^ST-[A-Z0-9-]{4,40}$'),
    customer_id       UUID NOT NULL REFERENCES customers (id) ON DELETE RESTRICT,
    -- The signed-in account that placed the order, if any (guests have none).
    user_id           UUID REFERENCES users (id) ON DELETE SET NULL,
    currency          TEXT NOT NULL DEFAULT 'usd' CHECK (currency ~ '^[a-z]{3}$'),
    subtotal_cents    BIGINT NOT NULL CHECK (subtotal_cents >= 0),
    discount_cents    BIGINT NOT NULL DEFAULT 0 CHECK (discount_cents >= 0),
    tax_cents         BIGINT NOT NULL DEFAULT 0 CHECK (tax_cents >= 0),
    shipping_cents    BIGINT NOT NULL DEFAULT 0 CHECK (shipping_cents >= 0),
    total_cents       BIGINT NOT NULL CHECK (total_cents >= 0),
    payment_status    TEXT NOT NULL DEFAULT 'pending'
                      CHECK (payment_status IN ('pending', 'paid', 'failed', 'refunded')),
    payment_intent_id TEXT UNIQUE,
    production_status TEXT NOT NULL DEFAULT 'pending'
                      CHECK (production_status IN
                             ('pending', 'in_production', 'printed', 'shipped', 'delivered', 'cancelled')),
    tracking_number   TEXT,
    carrier           TEXT,
    shipped_at        TIMESTAMPTZ,
    shipping_address  JSONB NOT NULL CHECK (jsonb_typeof(shipping_address) = 'object'),
    billing_address   JSONB CHECK (jsonb_typeof(billing_address) = 'object'),
    notes             TEXT,
    -- Client-chosen key of the POST that created the order: a retry finds this row.
    idempotency_key   TEXT UNIQUE CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (total_cents = subtotal_cents - discount_cents + tax_cents + shipping_cents),
    CHECK (production_status <> 'shipped' OR shipped_at IS NOT NULL)
);
CREATE INDEX orders_customer_idx ON orders (customer_id, created_at DESC);
CREATE INDEX orders_user_idx ON orders (user_id, created_at DESC) WHERE user_id IS NOT NULL;
-- Admin list: filter by status, newest first.
CREATE INDEX orders_status_idx ON orders (payment_status, production_status, created_at DESC);
CREATE INDEX orders_created_idx ON orders (created_at DESC);

CREATE TABLE order_items (
    id                UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    order_id          UUID NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    variant_id        UUID NOT NULL REFERENCES variants (id) ON DELETE RESTRICT,
    quantity          INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 10000),
    unit_price_cents  BIGINT NOT NULL CHECK (unit_price_cents >= 0),
    total_price_cents BIGINT NOT NULL CHECK (total_price_cents >= 0),
    custom_spec       JSONB NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(custom_spec) = 'object'),
    production_status TEXT NOT NULL DEFAULT 'pending'
                      CHECK (production_status IN ('pending', 'in_production', 'printed', 'shipped', 'cancelled')),
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX order_items_order_idx ON order_items (order_id);
CREATE INDEX order_items_variant_idx ON order_items (variant_id);

CREATE TABLE order_status_history (
    id         UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    order_id   UUID NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    old_status TEXT,
    new_status TEXT NOT NULL,
    changed_by UUID REFERENCES users (id) ON DELETE SET NULL,
    notes      TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX order_status_history_order_idx ON order_status_history (order_id, created_at);

-- Stored objects (uploads and what the cut-out makes of them). job_id gets its foreign
-- key after jobs exists: the two tables point at each other.
CREATE TABLE assets (
    id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id      UUID REFERENCES users (id) ON DELETE SET NULL,
    object_key    TEXT NOT NULL UNIQUE CHECK (length(object_key) BETWEEN 1 AND 1024),
    content_type  TEXT NOT NULL,
    byte_size     BIGINT NOT NULL CHECK (byte_size > 0),
    original_name TEXT,
    -- Lower-case hex SHA-256 of the stored bytes.
    content_hash  TEXT CHECK (content_hash ~ '^[0-9a-f]{64}$'),
    width         INTEGER CHECK (width > 0),
    height        INTEGER CHECK (height > 0),
    dpi           INTEGER CHECK (dpi > 0),
    kind          TEXT NOT NULL CHECK (kind IN ('upload', 'original', 'mask', 'transparent', 'proof')),
    job_id        UUID,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX assets_owner_idx ON assets (owner_id, created_at DESC) WHERE owner_id IS NOT NULL;
CREATE INDEX assets_job_idx ON assets (job_id) WHERE job_id IS NOT NULL;

-- Background-removal jobs. The CHECKs tie each state to the fields it must carry.
CREATE TABLE jobs (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         UUID REFERENCES users (id) ON DELETE SET NULL,
    upload_asset_id UUID NOT NULL REFERENCES assets (id) ON DELETE RESTRICT,
    status          TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'error')),
    logs            TEXT,
    error_message   TEXT,
    result          JSONB CHECK (jsonb_typeof(result) = 'object'),
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    completed_at    TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (status <> 'done' OR (result IS NOT NULL AND completed_at IS NOT NULL)),
    CHECK (status <> 'error' OR error_message IS NOT NULL)
);
CREATE INDEX jobs_user_idx ON jobs (user_id, created_at DESC) WHERE user_id IS NOT NULL;
CREATE INDEX jobs_upload_idx ON jobs (upload_asset_id);
-- Operators look for stuck work.
CREATE INDEX jobs_unfinished_idx ON jobs (updated_at) WHERE status IN ('queued', 'running');

ALTER TABLE assets
    ADD CONSTRAINT assets_job_fk FOREIGN KEY (job_id) REFERENCES jobs (id) ON DELETE SET NULL;

CREATE TABLE saved_designs (
    id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    product_id    UUID NOT NULL REFERENCES products (id) ON DELETE RESTRICT,
    variant_id    UUID REFERENCES variants (id) ON DELETE SET NULL,
    -- {"front": [{artwork_id, x, y, width, height, rotation}], "back": [...], "neck": [...]}
    design_data   JSONB NOT NULL CHECK (jsonb_typeof(design_data) = 'object'),
    thumbnail_url TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX saved_designs_user_idx ON saved_designs (user_id, updated_at DESC);

-- Idempotency ledger: Stripe event ids and queue message ids already handled.
CREATE TABLE processed_events (
    source       TEXT NOT NULL CHECK (source IN ('stripe', 'queue')),
    event_id     TEXT NOT NULL CHECK (length(event_id) BETWEEN 1 AND 255),
    event_type   TEXT,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (source, event_id)
);

-- One trigger per table keeps updated_at honest.
DO $$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['users', 'customers', 'products', 'variants', 'decoration_methods',
                             'decoration_method_products', 'price_rules', 'orders', 'order_items',
                             'order_status_history', 'assets', 'jobs', 'saved_designs',
                             'processed_events']
    LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE ON %I FOR EACH ROW EXECUTE FUNCTION set_updated_at()',
                       t || '_set_updated_at', t);
    END LOOP;
END;
$$;
