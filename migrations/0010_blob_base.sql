-- A delivered copy that ends with its original's body (the stages changed only the head) is stored
-- as its own head and a reference: data holds the head, and the rest is base's content from byte
-- base_from on. size stays the whole size. A base is cleared only together with what derives from it.
ALTER TABLE blobs ADD COLUMN base TEXT REFERENCES blobs(sha256);
ALTER TABLE blobs ADD COLUMN base_from INTEGER;
CREATE INDEX blobs_base ON blobs(base) WHERE base IS NOT NULL;
