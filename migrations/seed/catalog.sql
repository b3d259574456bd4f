-- Seed catalog (DOMAIN.md): two garments, three decoration methods, global bulk discounts.
-- Idempotent: inserts only what is missing, so re-running never overwrites edits made since.
-- No users: there is deliberately no default admin account or password.

INSERT INTO products (slug, title, description, images, materials, weight_grams, country_of_origin, status, sort_order)
VALUES
    ('classic-tee', 'Classic Tee',
     'A midweight crew-neck tee in ring-spun cotton. Our best canvas for prints.',
     '["/assets/products/classic-tee/front.jpg", "/assets/products/classic-tee/back.jpg"]',
     '100% ring-spun cotton, 180 gsm', 180, 'HN', 'active', 10),
    ('classic-hoodie', 'Classic Hoodie',
     'A heavyweight pullover hoodie with a lined hood and kangaroo pocket.',
     '["/assets/products/classic-hoodie/front.jpg", "/assets/products/classic-hoodie/back.jpg"]',
     '80% cotton, 20% polyester fleece, 320 gsm', 620, 'PK', 'active', 20)
ON CONFLICT (slug) DO NOTHING;

INSERT INTO variants (product_id, color, size, sku, base_cost_cents, base_price_cents, stock_level, sort_order)
SELECT p.id, v.color, v.size, v.sku, v.cost, v.price, v.stock, v.sort_order
FROM (VALUES
    ('classic-tee', 'Black', 'S',   'ST-TEE-BLK-S',   450, 1299, 500, 11),
    ('classic-tee', 'Black', 'M',   'ST-TEE-BLK-M',   450, 1299, 800, 12),
    ('classic-tee', 'Black', 'L',   'ST-TEE-BLK-L',   450, 1299, 800, 13),
    ('classic-tee', 'Black', 'XL',  'ST-TEE-BLK-XL',  480, 1399, 400, 14),
    ('classic-tee', 'Black', '2XL', 'ST-TEE-BLK-2XL', 520, 1499, 200, 15),
    ('classic-tee', 'White', 'S',   'ST-TEE-WHT-S',   430, 1299, 500, 21),
    ('classic-tee', 'White', 'M',   'ST-TEE-WHT-M',   430, 1299, 800, 22),
    ('classic-tee', 'White', 'L',   'ST-TEE-WHT-L',   430, 1299, 800, 23),
    ('classic-tee', 'White', 'XL',  'ST-TEE-WHT-XL',  460, 1399, 400, 24),
    ('classic-tee', 'White', '2XL', 'ST-TEE-WHT-2XL', 500, 1499, 200, 25),
    ('classic-hoodie', 'Black', 'S',   'ST-HOOD-BLK-S',   1650, 3599, 150, 11),
    ('classic-hoodie', 'Black', 'M',   'ST-HOOD-BLK-M',   1650, 3599, 250, 12),
    ('classic-hoodie', 'Black', 'L',   'ST-HOOD-BLK-L',   1650, 3599, 250, 13),
    ('classic-hoodie', 'Black', 'XL',  'ST-HOOD-BLK-XL',  1750, 3799, 120, 14),
    ('classic-hoodie', 'Black', '2XL', 'ST-HOOD-BLK-2XL', 1850, 3999,  60, 15)
) AS v (slug, color, size, sku, cost, price, stock, sort_order)
JOIN products p ON p.slug = v.slug
ON CONFLICT (sku) DO NOTHING;

-- pricing_rules: integer cents and basis points (10000 = x1.0). Exactly one per-placement
-- charge (per_color_cents | per_1000_stitches_cents | per_square_inch_cents) with its limit.
INSERT INTO decoration_methods (name, display_name, applies_to_all_products, pricing_rules, file_requirements, sort_order)
VALUES
    ('screen_print', 'Screen print', TRUE,
     '{"base_price_cents": 250, "per_color_cents": 75, "max_colors": 8, "per_location_cents": 100,
       "quantity_breaks": [{"min": 1,   "max": 11,   "multiplier_bp": 10000},
                           {"min": 12,  "max": 47,   "multiplier_bp": 8500},
                           {"min": 48,  "max": 143,  "multiplier_bp": 7000},
                           {"min": 144, "max": null, "multiplier_bp": 6000}]}',
     '{"formats": ["png", "svg", "pdf"], "min_dpi": 300, "max_colors": 8}', 10),
    ('embroidery', 'Embroidery', FALSE,
     '{"base_price_cents": 600, "per_1000_stitches_cents": 90, "max_stitches": 30000, "per_location_cents": 200,
       "quantity_breaks": [{"min": 1,  "max": 11,   "multiplier_bp": 10000},
                           {"min": 12, "max": 47,   "multiplier_bp": 9000},
                           {"min": 48, "max": null, "multiplier_bp": 8000}]}',
     '{"formats": ["png", "dst"], "min_dpi": 300}', 20),
    ('dtg', 'Direct to garment', TRUE,
     '{"base_price_cents": 500, "per_square_inch_cents": 3, "max_square_inches": 224, "per_location_cents": 150,
       "quantity_breaks": [{"min": 1,  "max": 23,   "multiplier_bp": 10000},
                           {"min": 24, "max": null, "multiplier_bp": 9000}]}',
     '{"formats": ["png"], "min_dpi": 300, "transparent_background": true}', 30)
ON CONFLICT (name) DO NOTHING;

-- Embroidery needs a heavier fabric: hoodies only.
INSERT INTO decoration_method_products (method_id, product_id)
SELECT m.id, p.id
FROM decoration_methods m
JOIN products p ON p.slug = 'classic-hoodie'
WHERE m.name = 'embroidery'
ON CONFLICT DO NOTHING;

-- Global bulk discounts (percentages in basis points).
INSERT INTO price_rules (name, scope, entity_id, min_qty, max_qty, discount_type, value, priority)
VALUES
    ('Bulk 12-23', 'global', NULL, 12, 23,   'percentage', 1000, 10),
    ('Bulk 24-49', 'global', NULL, 24, 49,   'percentage', 1500, 10),
    ('Bulk 50+',   'global', NULL, 50, NULL, 'percentage', 2000, 10)
ON CONFLICT (name) DO NOTHING;
