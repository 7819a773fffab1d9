SELECT id, v FROM "a.b".t ORDER BY id;
SELECT id, v FROM "a.b"."c.d" ORDER BY id;
SELECT v FROM x."y.z" ORDER BY v
