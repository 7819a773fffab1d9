SELECT id, email, aliases, book, home, homes, qty, feel, feels, span, days FROM people ORDER BY id;
SELECT id, who, addr, n FROM app.notes ORDER BY id;
SELECT count(*) FROM people WHERE email = 'ann@EXAMPLE.com';
SELECT pg_typeof(email)::text, pg_typeof(book)::text, pg_typeof(home)::text, pg_typeof(qty)::text, pg_typeof(span)::text FROM people WHERE id = 1
