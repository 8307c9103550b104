-- Schema 4: the stored files a school's box says it lacks (a replacement box, or a box put
-- back from a copy, whose rows reference files its store does not hold). The box's every
-- hello replaces its list, and the hub's next USB bundle for it carries those the hub holds.
-- Statements are split at semicolons, so none may appear inside one (comments included).

CREATE TABLE box_lacks (
    school TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (school, sha256)
)
;

-- When a box of the school last found that another box writes under its identity (two boxes
-- started from one copied disk): the console says so until the ministry looks into it.
ALTER TABLE schools ADD COLUMN clone_seen_at BIGINT
