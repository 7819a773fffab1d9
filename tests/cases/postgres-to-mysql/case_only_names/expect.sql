SELECT id, v FROM `{dst_db}_A`.`T` ORDER BY id;
SELECT id, v FROM `{dst_db}_a`.`t` ORDER BY id
