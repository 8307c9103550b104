-- An account's owner is told at login which activation codes were issued for it, by whom and
-- when: the audit trail is read by object (the account) and action, not only by date.
CREATE INDEX audit_log_object ON audit_log (object_id, action, at);
