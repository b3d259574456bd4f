-- What stands between an unauthenticated caller and Stripe, and what a payment did after it
-- was taken: call limits, cached tax quotes, refunds and disputes recorded on the order.
-- Expand-only: the previous build ignores every table and column added here.

-- Calls that reach Stripe on a caller's behalf, counted in fixed windows per bucket
-- (`ip:<client ip>`, `order:<order id>`) so a limit holds across every API instance. The API
-- increments and reads a bucket in one statement and deletes windows older than a day as it
-- writes (bounded table, no cron needed).
CREATE TABLE payment_call_counts (
    bucket       TEXT NOT NULL CHECK (length(bucket) BETWEEN 1 AND 200),
    window_start TIMESTAMPTZ NOT NULL,
    calls        INTEGER NOT NULL CHECK (calls >= 1),
    PRIMARY KEY (bucket, window_start)
);
CREATE INDEX payment_call_counts_window_idx ON payment_call_counts (window_start);

-- Stripe Tax answers by the fingerprint of the request (cart lines, shipping, address,
-- currency): the same cart to the same address is asked once per TAX_QUOTE_TTL_SECS, whoever
-- asks. Expired rows are deleted by the API as it writes.
CREATE TABLE tax_quotes (
    request_hash             TEXT PRIMARY KEY CHECK (request_hash ~ '^[0-9a-f]{64}$'),
    calculation_id           TEXT NOT NULL CHECK (length(calculation_id) BETWEEN 1 AND 255),
    amount_total_cents       BIGINT NOT NULL CHECK (amount_total_cents >= 0),
    tax_amount_exclusive_cents BIGINT NOT NULL CHECK (tax_amount_exclusive_cents >= 0),
    tax_amount_inclusive_cents BIGINT NOT NULL CHECK (tax_amount_inclusive_cents >= 0),
    -- When Stripe discards the calculation (Unix seconds), if it said.
    calculation_expires_at   BIGINT,
    expires_at               TIMESTAMPTZ NOT NULL,
    created_at               TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX tax_quotes_expires_idx ON tax_quotes (expires_at);

-- Money that went back, and chargebacks, on the order itself. refunded_cents is the charge's
-- cumulative amount refunded (partial refunds included); the dispute columns hold the newest
-- state of the order's dispute, dispute_updated_at the creation time of the event that set
-- it, so an older event delivered late cannot overwrite a newer one.
ALTER TABLE orders
    ADD COLUMN refunded_cents BIGINT NOT NULL DEFAULT 0 CHECK (refunded_cents >= 0),
    ADD COLUMN dispute_id TEXT CHECK (length(dispute_id) BETWEEN 1 AND 255),
    ADD COLUMN dispute_status TEXT CHECK (dispute_status ~ '^[a-z0-9_]{1,64}$'),
    ADD COLUMN dispute_amount_cents BIGINT CHECK (dispute_amount_cents >= 0),
    ADD COLUMN dispute_reason TEXT CHECK (length(dispute_reason) BETWEEN 1 AND 64),
    ADD COLUMN dispute_updated_at TIMESTAMPTZ,
    ADD CONSTRAINT orders_dispute_complete
        CHECK ((dispute_id IS NULL) = (dispute_status IS NULL)
               AND (dispute_id IS NULL) = (dispute_updated_at IS NULL));

-- A verified event that names no order the shop has is `unmatched` (and alarmed), no longer
-- filed under `rejected` with the events that did not fit their order.
ALTER TABLE processed_events DROP CONSTRAINT processed_events_outcome_check;
ALTER TABLE processed_events
    ADD CONSTRAINT processed_events_outcome_check
        CHECK (outcome IN ('applied', 'ignored', 'rejected', 'unhandled', 'unmatched'));
