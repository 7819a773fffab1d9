SELECT n::text, r::text, d::text, dt::text, ts::text, tstz::text, iv::text, ma::text FROM public.things ORDER BY id;
SELECT nextval(pg_get_serial_sequence('public.things', 'id')), nextval(pg_get_serial_sequence('public.serials', 'id'));
SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' AND indexname = 'things_t';
SELECT obj_description('public.things'::regclass, 'pg_class');
SELECT gen::text FROM public.things WHERE id = 1;
