-- Checkout, payments and fulfilment (issue 5).

-- Idempotency keys are scoped to who sent them: `user:<uuid>` for a signed-in account,
-- `guest:<email>` for a guest. V1 made the key unique on its own, which would let one client's
-- key collide with (or reveal) another's order. request_hash is the SHA-256 of the parsed
-- cart: the same key with a different cart is refused instead of returning the first order.
ALTER TABLE orders DROP CONSTRAINT orders_idempotency_key_key;
ALTER TABLE orders
    ADD COLUMN idempotency_scope TEXT CHECK (length(idempotency_scope) BETWEEN 1 AND 300),
    ADD COLUMN request_hash TEXT CHECK (request_hash ~ '^[0-9a-f]{64}$'),
    ADD CONSTRAINT orders_idempotency_scoped UNIQUE (idempotency_scope, idempotency_key),
    ADD CONSTRAINT orders_idempotency_complete
        CHECK ((idempotency_key IS NULL) = (idempotency_scope IS NULL)
               AND (idempotency_key IS NULL OR request_hash IS NOT NULL)),
    -- The Stripe Tax calculation the total came from (sent again with every intent request
    -- for this order, so Stripe's idempotent replay sees identical parameters).
    ADD COLUMN tax_calculation_id TEXT CHECK (length(tax_calculation_id) BETWEEN 1 AND 255),
    -- When the payment last changed, for the admin list and support.
    ADD COLUMN paid_at TIMESTAMPTZ,
    ADD COLUMN refunded_at TIMESTAMPTZ;

-- History rows say which status they are about: payment (webhooks) or production (staff).
ALTER TABLE order_status_history
    ADD COLUMN kind TEXT NOT NULL DEFAULT 'production' CHECK (kind IN ('payment', 'production'));

-- What each webhook event did: applied, ignored (already at or past that state), or
-- rejected (the intent did not match the order: amount or order id), with the reason.
ALTER TABLE processed_events
    ADD COLUMN outcome TEXT CHECK (outcome IN ('applied', 'ignored', 'rejected', 'unhandled')),
    ADD COLUMN order_id UUID REFERENCES orders (id) ON DELETE SET NULL,
    ADD COLUMN detail TEXT;
CREATE INDEX processed_events_order_idx ON processed_events (order_id) WHERE order_id IS NOT NULL;

-- Admin list: newest first with keyset pagination on (created_at, id).
CREATE INDEX orders_created_id_idx ON orders (created_at DESC, id DESC);
