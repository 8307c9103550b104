-- Schema 3: the stored files a school's rows reference (bulletins' PDFs, justifications,
-- lesson attachments). The bytes live in the object store under files/, and this table says which
-- school sent which file, so that a box is only ever given back its own school's files.
-- Statements are split at semicolons, so none may appear inside one (comments included).

CREATE TABLE school_files (
    school      TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    bytes       BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (school, sha256)
);
