//! Every table that can leave a school box, with its owner (DESIGN.md, *Sync*), and the rule
//! both sides apply on receipt: the hub accepts from a school only that school's rows of the
//! tables schools own; a box accepts from the hub only hub-owned tables (and, pulling its own
//! past back, its own school's rows). The box generates its capture triggers from this list.
//! A table missing here (a newer release's) is accepted by scope alone and kept until the
//! receiver's release understands it.

/// Who may write the rows of a table (DESIGN.md, *Sync*).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// Only the national hub writes; school code is refused by a trigger.
    Hub,
    /// Only this school writes; the hub keeps a read replica.
    School,
    /// Either side writes; last writer wins per field, conflicts kept for a person to settle.
    Shared,
}

#[derive(Debug, Clone, Copy)]
pub struct SyncedTable {
    pub name: &'static str,
    pub owner: Owner,
    /// Columns that never leave the box (password hashes, codes); not captured.
    pub secret_columns: &'static [&'static str],
}

/// Every synced table. On the box, a migration that creates a table missing here and from
/// the box's local tables (`db::registry::LOCAL_TABLES`) makes the database refuse to open.
pub const REGISTRY: &[SyncedTable] = &[
    SyncedTable {
        name: "people",
        owner: Owner::Shared,
        secret_columns: &[],
    },
    SyncedTable {
        name: "accounts",
        owner: Owner::School,
        secret_columns: &[
            "password_hash",
            "activation_hash",
            "activation_expires",
            "must_change_password",
            "last_login_at",
        ],
    },
    SyncedTable {
        name: "person_roles",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "guardianships",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "classes",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "class_members",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "school_years",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "periods",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "levels",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "series",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "rooms",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "equipment",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "pupil_groups",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "group_members",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "subjects",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "coefficients",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "teachings",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "timetable_slots",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "timetable_changes",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "roll_calls",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "absences",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "lesson_entries",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "lesson_entry_versions",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "lesson_attachments",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "incidents",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "incident_people",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "punishments",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "sanctions",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "agenda_events",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "bookings",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "assessment_settings",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "assessments",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "marks",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "subject_appreciations",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "council_records",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "bulletins",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "class_period_closures",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "competence_frameworks",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "competence_domains",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "competences",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "competence_records",
        owner: Owner::School,
        secret_columns: &[],
    },
    // Daily usage indicators: counts per day, service and role, no person (V17).
    SyncedTable {
        name: "usage_daily",
        owner: Owner::School,
        secret_columns: &[],
    },
    // What the national hub publishes to every school (V15).
    SyncedTable {
        name: "messaging_rules",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "messaging_settings",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "conversations",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "conversation_members",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "messages",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "message_reports",
        owner: Owner::School,
        secret_columns: &[],
    },
    SyncedTable {
        name: "national_announcements",
        owner: Owner::Hub,
        secret_columns: &[],
    },
    SyncedTable {
        name: "national_calendar",
        owner: Owner::Hub,
        secret_columns: &[],
    },
    SyncedTable {
        name: "reference_series",
        owner: Owner::Hub,
        secret_columns: &[],
    },
    SyncedTable {
        name: "reference_subjects",
        owner: Owner::Hub,
        secret_columns: &[],
    },
    SyncedTable {
        name: "reference_coefficients",
        owner: Owner::Hub,
        secret_columns: &[],
    },
];

/// Registered tables whose rows are never deleted (a trigger refuses it): issued documents.
pub const NEVER_DELETED: &[&str] = &["bulletins"];

/// The registered table called `name`.
pub fn table(name: &str) -> Option<&'static SyncedTable> {
    REGISTRY.iter().find(|t| t.name == name)
}

/// Who sends a change, as the receiver sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From<'a> {
    /// The hub's own log (announcements, calendar, reference lists).
    Hub,
    /// A school's log, as the hub receives it (or a box pulls its own past back): the
    /// school's scope, e.g. `school:LTLOME`.
    School(&'a str),
}

/// May a change of `table` with the row scope `scope` (`None` for a delete: the receiver
/// checks the scope of the row it holds) be applied when it comes from `from`? `Err` says why
/// not, in French, for the refusal's record. A table this release does not know (a newer
/// sender's) is judged by scope alone.
pub fn accepts(from: From<'_>, table: &str, scope: Option<&str>) -> Result<(), String> {
    let owner = self::table(table).map(|t| t.owner);
    match from {
        From::Hub => match owner {
            Some(Owner::Hub) | None => match scope {
                None | Some("national") => Ok(()),
                Some(other) => Err(format!(
                    "le portail national n'envoie que des lignes nationales ({table} : {other})"
                )),
            },
            Some(Owner::Shared) => Ok(()),
            Some(Owner::School) => Err(format!(
                "la table {table} appartient à l'établissement, pas au portail national"
            )),
        },
        From::School(own) => {
            if owner == Some(Owner::Hub) {
                return Err(format!("la table {table} appartient au portail national"));
            }
            match scope {
                None => Ok(()),
                Some(s) if s == own => Ok(()),
                Some(other) => Err(format!(
                    "ligne de {table} hors du périmètre de l'établissement ({other} au lieu de {own})"
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_side_accepts_only_what_it_does_not_own() {
        let school = From::School("school:LTLOME");
        assert!(accepts(school, "marks", Some("school:LTLOME")).is_ok());
        assert!(accepts(school, "marks", Some("school:AUTRE")).is_err());
        assert!(accepts(school, "marks", Some("national")).is_err());
        assert!(accepts(school, "national_announcements", Some("school:LTLOME")).is_err());
        assert!(accepts(school, "a_newer_table", Some("school:LTLOME")).is_ok());
        assert!(accepts(From::Hub, "national_calendar", Some("national")).is_ok());
        assert!(accepts(From::Hub, "marks", Some("national")).is_err());
        assert!(accepts(From::Hub, "national_calendar", Some("school:LTLOME")).is_err());
        assert!(
            accepts(From::Hub, "people", Some("school:LTLOME")).is_ok(),
            "shared"
        );
    }
}
