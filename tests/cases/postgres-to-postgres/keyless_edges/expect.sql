SELECT a, encode(by, 'hex'), j::text, jb::text, x::text, p::text, bx::text, ln::text, ls::text, pa::text, pg::text, c::text, ja::text, r::text, d::text, n::text, t, iv::text FROM public.kb ORDER BY a, by;
SELECT id, encode(by, 'hex'), j::text, x::text, p::text FROM public.pb ORDER BY id;
SELECT n::text, i::text, f::text, m FROM public.kc ORDER BY m;
SELECT n::text FROM public.kd;
