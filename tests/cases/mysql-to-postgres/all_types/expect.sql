SELECT id, total, f, t, y, encode(bin, 'hex') FROM shop.orders ORDER BY id;
SELECT note = E'tab\there\nnewline \\ back "quote" it''s 😀 \r cr', latin, tags, kind::text, flags::text, doc->'a'->>1 FROM shop.customers WHERE id = 1;
SELECT count(*) FROM shop.nokey;
SELECT nextval(pg_get_serial_sequence('shop.customers', 'id'));
SELECT total2 FROM shop.orders WHERE id = 0;
SELECT obj_description('shop.customers'::regclass, 'pg_class');
