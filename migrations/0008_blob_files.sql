-- Contents from 256 KiB on live in files beside the database (<db>-blobs/), not in it: their row
-- keeps sha256, size and the clearing, with an empty data ('' = present, NULL = cleared).
ALTER TABLE blobs ADD COLUMN in_file INTEGER NOT NULL DEFAULT 0;
