//! The one access-rule module: who may see and do what (DESIGN.md, *Security*).
//! Handlers ask here; they never decide rights with their own `if`s on roles.

use serde::Serialize;

/// A role a person holds in the school. One person may hold several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Role {
    Eleve,
    Parent,
    Enseignant,
    VieScolaire,
    Secretariat,
    Direction,
    Technicien,
    Invite,
}

impl Role {
    pub const ALL: [Role; 8] = [
        Role::Eleve,
        Role::Parent,
        Role::Enseignant,
        Role::VieScolaire,
        Role::Secretariat,
        Role::Direction,
        Role::Technicien,
        Role::Invite,
    ];

    /// The code stored in the database and used in files and URLs.
    pub fn code(self) -> &'static str {
        match self {
            Role::Eleve => "eleve",
            Role::Parent => "parent",
            Role::Enseignant => "enseignant",
            Role::VieScolaire => "vie_scolaire",
            Role::Secretariat => "secretariat",
            Role::Direction => "direction",
            Role::Technicien => "technicien",
            Role::Invite => "invite",
        }
    }

    pub fn parse(code: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.code() == code.trim())
    }

    /// The i18n key of the role's name.
    pub fn label_key(self) -> &'static str {
        match self {
            Role::Eleve => "role.eleve",
            Role::Parent => "role.parent",
            Role::Enseignant => "role.enseignant",
            Role::VieScolaire => "role.vie_scolaire",
            Role::Secretariat => "role.secretariat",
            Role::Direction => "role.direction",
            Role::Technicien => "role.technicien",
            Role::Invite => "role.invite",
        }
    }

    /// Staff get the shorter idle timeout and see staff-only services.
    pub fn is_staff(self) -> bool {
        !matches!(self, Role::Eleve | Role::Parent | Role::Invite)
    }
}

/// Who is asking: the logged-in person and their roles.
#[derive(Debug, Clone)]
pub struct Principal {
    pub person_id: [u8; 16],
    pub roles: Vec<Role>,
}

impl Principal {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub fn any_of(&self, roles: &[Role]) -> bool {
        self.any(roles)
    }

    fn any(&self, roles: &[Role]) -> bool {
        roles.iter().any(|r| self.has(*r))
    }

    pub fn is_staff(&self) -> bool {
        self.roles.iter().any(|r| r.is_staff())
    }
}

/// School-wide capabilities (no particular object).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Create, disable and reset accounts; print activation sheets.
    ManageAccounts,
    /// The technician's system page: health, versions, disk.
    ViewSystem,
    /// List every class of the school.
    ListAllClasses,
    /// Change the structure: years, periods, rooms, subjects, groups, imports.
    ManageStructure,
    /// Create and change timetable slots and one-off changes.
    ManageTimetable,
    /// See any class's, teacher's or room's timetable.
    ViewTimetables,
    /// See the whole school's absences and lateness.
    ViewSchoolAttendance,
    /// Record absences for any session and decide on justifications.
    ManageAttendance,
    /// Read every class's lesson log and put the visa on it.
    VisaLessonLog,
    /// See and handle every incident and punishment of the school.
    ManageDiscipline,
    /// Decide (and cancel) sanctions.
    DecideSanctions,
    /// Report an incident (and punish the pupils of one's own report).
    ReportIncidents,
    /// Write the school calendar.
    ManageAgenda,
    /// Book rooms and equipment.
    BookResources,
    /// Approve or refuse bookings that need it, cancel anyone's.
    ApproveBookings,
    /// Read every mark of the school, set the averages' settings, close periods (and change
    /// marks after closing), record council decisions.
    DirectAssessment,
    /// Correct a person's file: names, sex, birth date and place, phone, nouveau/redoublant.
    EditPeople,
    /// Run a backup now and read the backups' state (the technician's backups page).
    RunBackups,
    /// Print the recovery sheet: the only way to a key that reads the backups, hence to every
    /// mark and file of the school — the direction's, never the technician's.
    PrintRecoverySheet,
    /// Enroll the box with the national hub, run a sync now, read its state and settle the
    /// shared fields edited on both sides (the technician's sync page).
    RunSync,
}

/// The audiences of national announcements a person sees on their portal (the hub names one
/// per announcement): everyone's, plus pupils', families', staff's or the direction's.
pub fn announcement_audiences(p: &Principal) -> Vec<&'static str> {
    let mut out = vec!["tous"];
    let mut add = |a: &'static str| {
        if !out.contains(&a) {
            out.push(a);
        }
    };
    for role in &p.roles {
        match role {
            Role::Eleve => add("eleves"),
            Role::Parent => add("familles"),
            Role::Direction => {
                add("personnels");
                add("direction");
            }
            Role::Enseignant | Role::VieScolaire | Role::Secretariat | Role::Technicien => {
                add("personnels")
            }
            Role::Invite => {}
        }
    }
    out
}

pub fn allows(who: &Principal, cap: Capability) -> bool {
    match cap {
        Capability::ManageAccounts => {
            who.any(&[Role::Technicien, Role::Secretariat, Role::Direction])
        }
        Capability::ViewSystem => who.has(Role::Technicien),
        Capability::ListAllClasses => {
            who.any(&[Role::Direction, Role::VieScolaire, Role::Secretariat])
        }
        Capability::ManageStructure | Capability::ManageTimetable => {
            who.any(&[Role::Direction, Role::Secretariat])
        }
        Capability::ViewTimetables => who.any(&[
            Role::Enseignant,
            Role::VieScolaire,
            Role::Secretariat,
            Role::Direction,
            Role::Technicien,
        ]),
        Capability::ViewSchoolAttendance => who.any(&[Role::VieScolaire, Role::Direction]),
        Capability::ManageAttendance => who.has(Role::VieScolaire),
        Capability::VisaLessonLog => who.has(Role::Direction),
        Capability::ManageDiscipline => who.any(&[Role::VieScolaire, Role::Direction]),
        Capability::DecideSanctions => who.has(Role::Direction),
        Capability::ReportIncidents => {
            who.any(&[Role::Enseignant, Role::VieScolaire, Role::Direction])
        }
        Capability::ManageAgenda => {
            who.any(&[Role::Direction, Role::Secretariat, Role::VieScolaire])
        }
        Capability::BookResources => who.any(&[
            Role::Enseignant,
            Role::VieScolaire,
            Role::Secretariat,
            Role::Direction,
            Role::Technicien,
        ]),
        Capability::ApproveBookings => who.has(Role::Direction),
        Capability::DirectAssessment => who.has(Role::Direction),
        Capability::EditPeople => who.has(Role::Secretariat),
        Capability::RunBackups => who.has(Role::Technicien),
        Capability::PrintRecoverySheet => who.has(Role::Direction),
        Capability::RunSync => who.has(Role::Technicien),
    }
}

/// May `who` hand out `role` — create an account holding it, add it to a person by import?
/// Nobody grants a role that sees more than they do (DESIGN.md, *Security*): the direction
/// grants every role; the technician and the secrétariat grant the family and teaching roles
/// and their own, never the direction's, nor each other's or vie scolaire's (which see what
/// they do not: files and imports, system settings, discipline). The box's command line grants
/// any role — whoever holds it holds the machine.
pub fn may_grant(who: &Principal, role: Role) -> bool {
    match role {
        Role::Direction => who.has(Role::Direction),
        Role::Eleve | Role::Parent | Role::Enseignant | Role::Invite => {
            allows(who, Capability::ManageAccounts)
        }
        Role::VieScolaire | Role::Secretariat | Role::Technicien => {
            who.has(Role::Direction) || who.has(role)
        }
    }
}

/// May `who` act on the account of a person holding `target` roles: issue an activation code
/// (which logs in whatever the password is), print it on a sheet, disable or enable it? Only if
/// `who` could have granted every one of those roles: a technician never opens the
/// proviseur's account, and so never reads the marks and sanctions the direction sees.
pub fn may_manage_account(who: &Principal, target: &[Role]) -> bool {
    allows(who, Capability::ManageAccounts) && target.iter().all(|r| may_grant(who, *r))
}

/// The roles `who` may hand out, in the order forms list them.
pub fn grantable_roles(who: &Principal) -> Vec<Role> {
    Role::ALL
        .into_iter()
        .filter(|r| may_grant(who, *r))
        .collect()
}

/// What the store knows about the link between the asker and a person record.
#[derive(Debug, Clone, Copy, Default)]
pub struct PersonFacts {
    pub is_self: bool,
    /// The asker is a legal guardian of this person.
    pub is_guardian: bool,
    /// The person is a minor today, or (adult) consents to their guardians seeing their data.
    pub minor_or_consents: bool,
    /// The asker teaches a class this person is a pupil of.
    pub taught_by_asker: bool,
}

/// May `who` see the file (fiche) of a person?
pub fn may_view_person(who: &Principal, facts: PersonFacts) -> bool {
    facts.is_self
        || (who.has(Role::Parent) && facts.is_guardian && facts.minor_or_consents)
        || (who.has(Role::Enseignant) && facts.taught_by_asker)
        || who.any(&[Role::VieScolaire, Role::Direction, Role::Secretariat])
}

/// What the store knows about the link between the asker and a class.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClassFacts {
    /// The asker teaches in this class (or is its professeur principal).
    pub teaches: bool,
}

/// May `who` see the list of a class?
pub fn may_view_class(who: &Principal, facts: ClassFacts) -> bool {
    (who.has(Role::Enseignant) && facts.teaches) || allows(who, Capability::ListAllClasses)
}

/// May `who` see a pupil's timetable?
pub fn may_view_timetable_of(who: &Principal, facts: PersonFacts) -> bool {
    may_view_person(who, facts) || allows(who, Capability::ViewTimetables)
}

/// May `who` see a pupil's absences and lateness? (Not the secrétariat nor the technician.)
pub fn may_view_attendance_of(who: &Principal, facts: PersonFacts) -> bool {
    facts.is_self
        || (who.has(Role::Parent) && facts.is_guardian && facts.minor_or_consents)
        || (who.has(Role::Enseignant) && facts.taught_by_asker)
        || allows(who, Capability::ViewSchoolAttendance)
}

/// May `who` send a justification for a pupil's absence? Their legal guardian (while they may
/// see the child), or the pupil themself once adult.
pub fn may_justify_absence_of(who: &Principal, facts: PersonFacts, pupil_is_adult: bool) -> bool {
    (who.has(Role::Parent) && facts.is_guardian && facts.minor_or_consents)
        || (facts.is_self && pupil_is_adult)
}

/// May `who` take the roll call of a session? Its teacher (or replacement), or vie scolaire.
pub fn may_take_roll_call(who: &Principal, teaches_session: bool) -> bool {
    (who.has(Role::Enseignant) && teaches_session) || allows(who, Capability::ManageAttendance)
}

/// May `who` write the lesson log of a session? Only the teacher who teaches it (or the
/// replacement); the cahier de textes is the teacher's own record.
pub fn may_write_lesson_log(who: &Principal, teaches_session: bool) -> bool {
    who.has(Role::Enseignant) && teaches_session
}

/// May `who` read a class's lesson log as a whole? The direction, and its teachers.
pub fn may_read_class_log(who: &Principal, facts: ClassFacts) -> bool {
    (who.has(Role::Enseignant) && facts.teaches) || allows(who, Capability::VisaLessonLog)
}

/// May `who` read a pupil's lesson log and homework? The pupil, their guardians (while they may
/// see the child), a teacher of theirs, the direction.
pub fn may_read_pupil_log(who: &Principal, facts: PersonFacts) -> bool {
    facts.is_self
        || (who.has(Role::Parent) && facts.is_guardian && facts.minor_or_consents)
        || (who.has(Role::Enseignant) && facts.taught_by_asker)
        || allows(who, Capability::VisaLessonLog)
}

/// May `who` see an incident (its description names pupils)? Vie scolaire and direction, and
/// the teacher who reported it.
pub fn may_view_incident(who: &Principal, reported_by_asker: bool) -> bool {
    allows(who, Capability::ManageDiscipline)
        || (reported_by_asker && allows(who, Capability::ReportIncidents))
}

/// May `who` see a pupil's punishments and sanctions? Vie scolaire, direction, the pupil, and
/// their guardians while they may see the child (DOMAIN.md: sensitive data). Not teachers, not
/// the technician.
pub fn may_view_discipline_of(who: &Principal, facts: PersonFacts) -> bool {
    facts.is_self
        || (who.has(Role::Parent) && facts.is_guardian && facts.minor_or_consents)
        || allows(who, Capability::ManageDiscipline)
}

/// What the store knows about an agenda event's audience and the asker.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventFacts {
    /// "tous": everyone of the school.
    pub everyone: bool,
    /// "personnel": staff only.
    pub staff_only: bool,
    /// For a class event: the asker is in the class (pupil, teacher) or is the guardian of a
    /// pupil of it who is a minor or consents (the parent of an adult who does not consent
    /// sees nothing of the child's class).
    pub in_class: bool,
}

/// May `who` see an agenda event?
pub fn may_view_event(who: &Principal, facts: EventFacts) -> bool {
    // A class event: its pupils, teachers and families, and the school-wide staff.
    let class_event = !facts.everyone && !facts.staff_only;
    facts.everyone
        || (facts.staff_only && who.is_staff())
        || facts.in_class
        || (class_event && allows(who, Capability::ListAllClasses))
        || allows(who, Capability::ManageAgenda)
}

/// May `who` change the marks of an assessment? Its teacher while the period is open; once the
/// period is closed, only the direction (DOMAIN.md: audited like every mark change).
pub fn may_enter_marks(who: &Principal, own_assessment: bool, period_closed: bool) -> bool {
    if period_closed {
        allows(who, Capability::DirectAssessment)
    } else {
        who.has(Role::Enseignant) && own_assessment
    }
}

/// May `who` open an assessment's grid? Its teacher and the direction.
pub fn may_view_assessment(who: &Principal, own_assessment: bool) -> bool {
    (who.has(Role::Enseignant) && own_assessment) || allows(who, Capability::DirectAssessment)
}

/// Which of a pupil's marks `who` may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarksView {
    /// Every mark, published or not (direction).
    All,
    /// The marks of the asker's own assessments (a teacher of the pupil).
    OwnTeaching,
    /// Published marks only (the pupil, their guardians).
    Published,
}

/// May `who` see a pupil's marks, and which? Never the technician, vie scolaire or secrétariat
/// (they see issued bulletins, not marks).
pub fn marks_view_of(who: &Principal, facts: PersonFacts) -> Option<MarksView> {
    if allows(who, Capability::DirectAssessment) {
        Some(MarksView::All)
    } else if facts.is_self
        || (who.has(Role::Parent) && facts.is_guardian && facts.minor_or_consents)
    {
        Some(MarksView::Published)
    } else if who.has(Role::Enseignant) && facts.taught_by_asker {
        Some(MarksView::OwnTeaching)
    } else {
        None
    }
}

/// Which averages a pupil's marks page shows besides each subject's: the direction sees the
/// general average and the class's per subject; the pupil and their family only what the
/// school chose to show them before the bulletin (`families_see`); a teacher of the pupil
/// neither (they see their own teaching, not the other subjects that make the average).
pub fn averages_shown(
    view: MarksView,
    families_see: crate::grades::compute::FamiliesSee,
) -> crate::grades::compute::FamiliesSee {
    use crate::grades::compute::FamiliesSee;
    match view {
        MarksView::All => FamiliesSee {
            general: true,
            class: true,
        },
        MarksView::Published => families_see,
        MarksView::OwnTeaching => FamiliesSee::default(),
    }
}

/// May `who` see a class's results table and run its conseil de classe? Its professeur
/// principal and the direction.
pub fn may_run_council(who: &Principal, is_principal: bool) -> bool {
    (who.has(Role::Enseignant) && is_principal) || allows(who, Capability::DirectAssessment)
}

/// May `who` open the list of sessions whose roll call they may take? Teachers (their own
/// sessions) and vie scolaire (every session).
pub fn may_list_roll_calls(who: &Principal) -> bool {
    who.has(Role::Enseignant) || allows(who, Capability::ManageAttendance)
}

/// Does `who`'s home page open on a teacher's day (their own lessons, roll calls, grids)?
pub fn has_teaching_day(who: &Principal) -> bool {
    who.has(Role::Enseignant)
}

/// Does `who`'s home page open on a family's day (their own, or each child's: lessons and
/// their changes, homework, latest marks, absences to justify)? Pupils and parents; each part
/// is then shown only where the `may_*` rule for that child allows it.
pub fn has_family_day(who: &Principal) -> bool {
    who.any(&[Role::Eleve, Role::Parent])
}

/// Does `who`'s home page open on the vie scolaire desk's day (the day's absences and
/// lateness, finished lessons without their roll call, justifications waiting)?
pub fn has_attendance_desk(who: &Principal) -> bool {
    allows(who, Capability::ManageAttendance)
}

/// May `who` tick homework as done for `pupil`? The pupil alone: it is their own reminder,
/// not a record for the family or the teacher.
pub fn may_tick_homework(who: &Principal, pupil: &[u8; 16]) -> bool {
    who.has(Role::Eleve) && who.person_id == *pupil
}

/// Does `who`'s home page list what waits for them — periods to close, visas, bookings to
/// approve (direction); backups, disk, the national link (technician)?
pub fn has_things_to_see_to(who: &Principal) -> bool {
    [
        Capability::DirectAssessment,
        Capability::VisaLessonLog,
        Capability::ApproveBookings,
        Capability::RunBackups,
        Capability::ViewSystem,
        Capability::RunSync,
        Capability::ManageAccounts,
        Capability::ManageStructure,
    ]
    .into_iter()
    .any(|c| allows(who, c))
}

/// May `who` open the marks home page? The direction; a teacher; whoever has a council to run
/// or children to follow there (the page shows only those).
pub fn may_open_marks(who: &Principal, has_councils: bool, has_children: bool) -> bool {
    allows(who, Capability::DirectAssessment)
        || who.has(Role::Enseignant)
        || has_councils
        || has_children
}

/// May `who` list classes? Those who see every class, and teachers (their own).
pub fn may_list_classes(who: &Principal) -> bool {
    allows(who, Capability::ListAllClasses) || who.has(Role::Enseignant)
}

/// May `who` print (issue, download) a class's bulletins? The direction and the secrétariat,
/// and the class's professeur principal.
pub fn may_print_bulletins(who: &Principal, is_principal: bool) -> bool {
    who.any(&[Role::Direction, Role::Secretariat]) || (who.has(Role::Enseignant) && is_principal)
}

/// May `who` download one pupil's issued bulletin? Those who print the class's, the pupil, and
/// the pupil's guardians while they may see the child.
pub fn may_download_bulletin(who: &Principal, facts: PersonFacts, is_principal: bool) -> bool {
    facts.is_self
        || (who.has(Role::Parent) && facts.is_guardian && facts.minor_or_consents)
        || may_print_bulletins(who, is_principal)
}

/// May `who` record competence levels for a class? Its teachers and the direction.
pub fn may_record_competences(who: &Principal, teaches_class: bool) -> bool {
    allows(who, Capability::DirectAssessment) || (who.has(Role::Enseignant) && teaches_class)
}

/// What the store knows about a lesson-log entry and the asker.
#[derive(Debug, Clone, Default)]
pub struct EntryFacts {
    /// The asker wrote it.
    pub is_author: bool,
    /// About the entry's class (for a group's entry, the group's class), if it has one.
    pub class: Option<ClassFacts>,
    /// About each pupil of the session's class or group whom the asker is linked to (as the
    /// pupil, a guardian, a teacher).
    pub pupils: Vec<PersonFacts>,
}

/// May `who` read a lesson-log entry (and its documents)? Its author, whoever reads the
/// class's log as a whole, and whoever may read the log of one of its pupils.
pub fn may_read_entry(who: &Principal, facts: &EntryFacts) -> bool {
    facts.is_author
        || allows(who, Capability::VisaLessonLog)
        || facts.class.is_some_and(|c| may_read_class_log(who, c))
        || facts.pupils.iter().any(|p| may_read_pupil_log(who, *p))
}

/// May `who` cancel a booking? Whoever made it, and whoever approves bookings.
pub fn may_cancel_booking(who: &Principal, made_by_asker: bool) -> bool {
    made_by_asker || allows(who, Capability::ApproveBookings)
}

/// May `who` write a pupil's appreciation in a subject? The teacher of that subject.
pub fn may_write_appreciation(who: &Principal, teaches_subject: bool) -> bool {
    who.has(Role::Enseignant) && teaches_subject
}

// ---------------------------------------------------------------------------------------------
// Messages: who may write to whom

/// Whom a message can be addressed to, as the school's rules name them: each role, and the
/// professeur principal apart from the other teachers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Audience {
    Eleve,
    Parent,
    Enseignant,
    Principal,
    VieScolaire,
    Secretariat,
    Direction,
    Technicien,
}

impl Audience {
    pub const ALL: [Audience; 8] = [
        Audience::Eleve,
        Audience::Parent,
        Audience::Enseignant,
        Audience::Principal,
        Audience::VieScolaire,
        Audience::Secretariat,
        Audience::Direction,
        Audience::Technicien,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Audience::Eleve => "eleve",
            Audience::Parent => "parent",
            Audience::Enseignant => "enseignant",
            Audience::Principal => "principal",
            Audience::VieScolaire => "vie_scolaire",
            Audience::Secretariat => "secretariat",
            Audience::Direction => "direction",
            Audience::Technicien => "technicien",
        }
    }

    pub fn parse(code: &str) -> Option<Audience> {
        Audience::ALL.into_iter().find(|a| a.code() == code)
    }

    /// The audience a role is (a guest is none).
    pub fn of_role(role: Role) -> Option<Audience> {
        Some(match role {
            Role::Eleve => Audience::Eleve,
            Role::Parent => Audience::Parent,
            Role::Enseignant => Audience::Enseignant,
            Role::VieScolaire => Audience::VieScolaire,
            Role::Secretariat => Audience::Secretariat,
            Role::Direction => Audience::Direction,
            Role::Technicien => Audience::Technicien,
            Role::Invite => return None,
        })
    }

    /// Pupils and parents: quiet hours apply to them.
    pub fn is_family(self) -> bool {
        matches!(self, Audience::Eleve | Audience::Parent)
    }
}

/// How far a sender of one audience may write to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reach {
    /// Never.
    Non,
    /// Only those a class links to the sender: the pupil's or the child's teachers and
    /// professeur principal, a teacher's pupils and their parents, a class's pupils together.
    Classe,
    /// Anyone of the school in that audience.
    Ecole,
}

impl Reach {
    pub fn code(self) -> &'static str {
        match self {
            Reach::Non => "non",
            Reach::Classe => "classe",
            Reach::Ecole => "ecole",
        }
    }

    pub fn parse(code: &str) -> Option<Reach> {
        [Reach::Non, Reach::Classe, Reach::Ecole]
            .into_iter()
            .find(|r| r.code() == code)
    }
}

/// Pairs the school cannot open, whatever its rules say: a parent never writes to another
/// parent, a pupil never to another pupil's parent (only to their own), a parent never to
/// another family's child (only to their own).
pub fn fixed_reach(sender: Audience, recipient: Audience) -> Option<Reach> {
    match (sender, recipient) {
        (Audience::Parent, Audience::Parent) => Some(Reach::Non),
        _ => None,
    }
}

/// The school's rules: for each sending audience (a role) and each receiving audience, how far
/// (school data, edited by the direction; `messages::store` keeps them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagingRules {
    reach: std::collections::BTreeMap<(Audience, Audience), Reach>,
}

impl MessagingRules {
    /// Close to what French ENTs ship: a class's pupils write to its teachers, its professeur
    /// principal and vie scolaire; its parents to the same and to the direction and the
    /// secrétariat; the staff to everyone of the school.
    pub fn defaults() -> MessagingRules {
        use Audience::*;
        let mut reach = std::collections::BTreeMap::new();
        for s in Audience::ALL {
            for r in Audience::ALL {
                let v = match (s, r) {
                    (Principal, _) => continue,
                    (Eleve, Enseignant | Principal) => Reach::Classe,
                    (Eleve, VieScolaire) => Reach::Ecole,
                    (Eleve, _) => Reach::Non,
                    (Parent, Enseignant | Principal) => Reach::Classe,
                    (Parent, VieScolaire | Direction | Secretariat) => Reach::Ecole,
                    (Parent, _) => Reach::Non,
                    _ => Reach::Ecole,
                };
                reach.insert((s, r), v);
            }
        }
        MessagingRules { reach }
    }

    /// The rule for a pair (a fixed pair keeps its fixed reach; the professeur principal
    /// writes as a teacher).
    pub fn get(&self, sender: Audience, recipient: Audience) -> Reach {
        if let Some(fixed) = fixed_reach(sender, recipient) {
            return fixed;
        }
        let sender = if sender == Audience::Principal {
            Audience::Enseignant
        } else {
            sender
        };
        self.reach
            .get(&(sender, recipient))
            .copied()
            .unwrap_or(Reach::Non)
    }

    /// Change one pair (a fixed pair does not change).
    pub fn set(&mut self, sender: Audience, recipient: Audience, reach: Reach) {
        if sender != Audience::Principal && fixed_reach(sender, recipient).is_none() {
            self.reach.insert((sender, recipient), reach);
        }
    }

    /// Every pair a school may set, in display order.
    pub fn pairs(&self) -> Vec<(Audience, Audience, Reach)> {
        Audience::ALL
            .into_iter()
            .filter(|s| *s != Audience::Principal)
            .flat_map(|s| Audience::ALL.into_iter().map(move |r| (s, r)))
            .map(|(s, r)| (s, r, self.get(s, r)))
            .collect()
    }
}

/// What the rules need to know of one possible recipient, as seen from the sender.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecipientFacts {
    /// The audiences the recipient is in (their roles; `Principal` when they are the
    /// professeur principal of a class).
    pub audiences: Vec<Audience>,
    /// A class links them to the sender (see [`Reach::Classe`]).
    pub shares_class: bool,
    /// The recipient is the sender's legal guardian.
    pub guardian_of_sender: bool,
    /// The recipient is the sender's child.
    pub child_of_sender: bool,
    /// The recipient wrote to the sender in the conversation being answered: a reply to them
    /// is always allowed (a pupil answers the teacher who wrote to them).
    pub wrote_here: bool,
}

/// May `who` write to this recipient? Decided from the school's rules, the fixed limits and
/// what links them; never to oneself.
pub fn may_write(who: &Principal, rules: &MessagingRules, to: &RecipientFacts) -> bool {
    if to.wrote_here {
        return true;
    }
    who.roles
        .iter()
        .filter_map(|r| Audience::of_role(*r))
        .any(|s| {
            to.audiences.iter().any(|&a| {
                let reach = rules.get(s, a);
                let linked = match (s, a) {
                    // A pupil writes to their own parents only; a parent to their own children.
                    (Audience::Eleve, Audience::Parent) => to.guardian_of_sender,
                    (Audience::Parent, Audience::Eleve) => to.child_of_sender,
                    _ => true,
                };
                linked
                    && match reach {
                        Reach::Non => false,
                        Reach::Classe => {
                            to.shares_class || to.guardian_of_sender || to.child_of_sender
                        }
                        Reach::Ecole => true,
                    }
            })
        })
}

/// May `who` change the school's messaging rules? The direction.
pub fn may_edit_messaging_rules(who: &Principal) -> bool {
    who.has(Role::Direction)
}

/// May `who` see the reported messages and deal with them? The direction.
pub fn may_review_reports(who: &Principal) -> bool {
    who.has(Role::Direction)
}

/// May `who` use the messages at all? Everyone of the school but a guest.
pub fn may_use_messages(who: &Principal) -> bool {
    who.roles.iter().any(|r| Audience::of_role(*r).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(roles: &[Role]) -> Principal {
        Principal {
            person_id: [0; 16],
            roles: roles.to_vec(),
        }
    }

    #[test]
    fn role_codes_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.code()), Some(r));
        }
        assert_eq!(Role::parse("roi"), None);
    }

    #[test]
    fn a_parent_sees_a_child_only_while_minor_or_consenting() {
        let parent = p(&[Role::Parent]);
        let child = PersonFacts {
            is_guardian: true,
            minor_or_consents: true,
            ..Default::default()
        };
        assert!(may_view_person(&parent, child));
        assert!(!may_view_person(
            &parent,
            PersonFacts {
                minor_or_consents: false,
                ..child
            }
        ));
        assert!(!may_view_person(&parent, PersonFacts::default()));
    }

    #[test]
    fn nobody_grants_or_opens_an_account_that_sees_more_than_they_do() {
        let (tech, sec, dir, teacher) = (
            p(&[Role::Technicien]),
            p(&[Role::Secretariat]),
            p(&[Role::Direction]),
            p(&[Role::Enseignant]),
        );
        for r in Role::ALL {
            assert!(may_grant(&dir, r), "the direction grants {r:?}");
            assert!(!may_grant(&teacher, r), "a teacher grants nothing");
        }
        for who in [&tech, &sec] {
            assert!(!may_grant(who, Role::Direction));
            assert!(!may_grant(who, Role::VieScolaire));
            for r in [Role::Eleve, Role::Parent, Role::Enseignant, Role::Invite] {
                assert!(may_grant(who, r));
            }
            assert!(!may_manage_account(who, &[Role::Direction]));
            assert!(!may_manage_account(
                who,
                &[Role::Enseignant, Role::Direction]
            ));
            assert!(may_manage_account(who, &[Role::Eleve]));
        }
        assert!(may_grant(&tech, Role::Technicien) && !may_grant(&tech, Role::Secretariat));
        assert!(may_grant(&sec, Role::Secretariat) && !may_grant(&sec, Role::Technicien));
        assert!(may_manage_account(&dir, &[Role::Direction]));
        assert!(!may_manage_account(&teacher, &[Role::Eleve]));
        assert_eq!(
            grantable_roles(&tech),
            vec![
                Role::Eleve,
                Role::Parent,
                Role::Enseignant,
                Role::Technicien,
                Role::Invite
            ]
        );
    }

    #[test]
    fn the_rules_moved_out_of_the_features() {
        let (t, dir, sec, cpe, parent, pupil, tech) = (
            p(&[Role::Enseignant]),
            p(&[Role::Direction]),
            p(&[Role::Secretariat]),
            p(&[Role::VieScolaire]),
            p(&[Role::Parent]),
            p(&[Role::Eleve]),
            p(&[Role::Technicien]),
        );
        // Bulletins: the direction, the secrétariat, the class's principal; the family its own.
        assert!(may_print_bulletins(&dir, false) && may_print_bulletins(&sec, false));
        assert!(may_print_bulletins(&t, true) && !may_print_bulletins(&t, false));
        assert!(!may_print_bulletins(&cpe, false) && !may_print_bulletins(&tech, false));
        let child = PersonFacts {
            is_guardian: true,
            minor_or_consents: true,
            ..Default::default()
        };
        assert!(may_download_bulletin(&parent, child, false));
        assert!(!may_download_bulletin(
            &parent,
            PersonFacts {
                minor_or_consents: false,
                ..child
            },
            false
        ));
        let me = PersonFacts {
            is_self: true,
            ..Default::default()
        };
        assert!(may_download_bulletin(&pupil, me, false));
        assert!(!may_download_bulletin(
            &pupil,
            PersonFacts::default(),
            false
        ));
        // Competences: the class's teachers and the direction.
        assert!(may_record_competences(&t, true) && !may_record_competences(&t, false));
        assert!(may_record_competences(&dir, false) && !may_record_competences(&cpe, false));
        // The lesson log: the author, the direction, the class's teachers, a pupil's family.
        let nothing = EntryFacts::default();
        assert!(!may_read_entry(&t, &nothing) && may_read_entry(&dir, &nothing));
        assert!(may_read_entry(
            &t,
            &EntryFacts {
                is_author: true,
                ..Default::default()
            }
        ));
        assert!(may_read_entry(
            &t,
            &EntryFacts {
                class: Some(ClassFacts { teaches: true }),
                ..Default::default()
            }
        ));
        assert!(may_read_entry(
            &parent,
            &EntryFacts {
                pupils: vec![child],
                ..Default::default()
            }
        ));
        assert!(!may_read_entry(
            &parent,
            &EntryFacts {
                pupils: vec![PersonFacts {
                    minor_or_consents: false,
                    ..child
                }],
                ..Default::default()
            }
        ));
        // Bookings: their author, and whoever approves them.
        assert!(may_cancel_booking(&t, true) && !may_cancel_booking(&t, false));
        assert!(may_cancel_booking(&dir, false));
        // Lists.
        assert!(may_list_roll_calls(&t) && may_list_roll_calls(&cpe) && !may_list_roll_calls(&dir));
        assert!(may_list_classes(&t) && may_list_classes(&sec) && !may_list_classes(&pupil));
        assert!(may_open_marks(&parent, false, true) && !may_open_marks(&parent, false, false));
        assert!(!may_open_marks(&tech, false, false));
    }

    #[test]
    fn the_technician_manages_accounts_but_sees_no_pupil_file() {
        let tech = p(&[Role::Technicien]);
        assert!(allows(&tech, Capability::ManageAccounts));
        assert!(allows(&tech, Capability::ViewSystem));
        assert!(!may_view_person(&tech, PersonFacts::default()));
        assert!(!may_view_class(&tech, ClassFacts::default()));
        assert!(!may_view_attendance_of(&tech, PersonFacts::default()));
        // Backups: the technician runs them; only the direction gets the key that reads them.
        assert!(allows(&tech, Capability::RunBackups));
        assert!(allows(&tech, Capability::RunSync));
        assert!(!allows(&tech, Capability::PrintRecoverySheet));
        let dir = p(&[Role::Direction]);
        assert!(allows(&dir, Capability::PrintRecoverySheet));
        assert!(!allows(&dir, Capability::RunBackups));
        for r in [
            Role::Secretariat,
            Role::Enseignant,
            Role::VieScolaire,
            Role::Parent,
            Role::Eleve,
        ] {
            assert!(!allows(&p(&[r]), Capability::PrintRecoverySheet));
            assert!(!allows(&p(&[r]), Capability::RunBackups));
            assert!(!allows(&p(&[r]), Capability::RunSync));
        }
    }

    #[test]
    fn attendance_rights() {
        let parent = p(&[Role::Parent]);
        let child = PersonFacts {
            is_guardian: true,
            minor_or_consents: true,
            ..Default::default()
        };
        assert!(may_view_attendance_of(&parent, child));
        assert!(may_justify_absence_of(&parent, child, false));
        assert!(!may_justify_absence_of(
            &parent,
            PersonFacts::default(),
            false
        ));
        let pupil = p(&[Role::Eleve]);
        let me = PersonFacts {
            is_self: true,
            ..Default::default()
        };
        assert!(may_view_attendance_of(&pupil, me));
        assert!(
            !may_justify_absence_of(&pupil, me, false),
            "a minor's parents justify"
        );
        assert!(may_justify_absence_of(&pupil, me, true));
        assert!(!may_view_attendance_of(
            &p(&[Role::Secretariat]),
            PersonFacts::default()
        ));
        assert!(may_view_attendance_of(
            &p(&[Role::VieScolaire]),
            PersonFacts::default()
        ));
        let teacher = p(&[Role::Enseignant]);
        assert!(may_take_roll_call(&teacher, true));
        assert!(!may_take_roll_call(&teacher, false));
        assert!(may_take_roll_call(&p(&[Role::VieScolaire]), false));
        assert!(!may_take_roll_call(&p(&[Role::Direction]), false));
    }

    #[test]
    fn a_teacher_sees_only_their_classes() {
        let t = p(&[Role::Enseignant]);
        assert!(may_view_class(&t, ClassFacts { teaches: true }));
        assert!(!may_view_class(&t, ClassFacts { teaches: false }));
        assert!(!allows(&t, Capability::ManageAccounts));
    }

    #[test]
    fn discipline_and_lesson_log_are_kept_to_those_who_need_them() {
        let (t, cpe, dir, tech, parent) = (
            p(&[Role::Enseignant]),
            p(&[Role::VieScolaire]),
            p(&[Role::Direction]),
            p(&[Role::Technicien]),
            p(&[Role::Parent]),
        );
        // Incidents: vie scolaire and direction, and the teacher who reported one.
        assert!(may_view_incident(&t, true) && !may_view_incident(&t, false));
        assert!(may_view_incident(&cpe, false) && may_view_incident(&dir, false));
        assert!(!may_view_incident(&tech, true));
        // Sanctions: never the technician nor teachers; the family while it may see the child.
        let child = PersonFacts {
            is_guardian: true,
            minor_or_consents: true,
            ..Default::default()
        };
        let taught = PersonFacts {
            taught_by_asker: true,
            ..Default::default()
        };
        assert!(may_view_discipline_of(&parent, child));
        assert!(!may_view_discipline_of(
            &parent,
            PersonFacts {
                minor_or_consents: false,
                ..child
            }
        ));
        assert!(!may_view_discipline_of(&t, taught));
        assert!(!may_view_discipline_of(&tech, PersonFacts::default()));
        assert!(may_view_discipline_of(&cpe, PersonFacts::default()));
        assert!(
            allows(&dir, Capability::DecideSanctions) && !allows(&cpe, Capability::DecideSanctions)
        );
        // Lesson log: the session's teacher writes; the direction reads all and gives visas.
        assert!(may_write_lesson_log(&t, true) && !may_write_lesson_log(&t, false));
        assert!(
            !may_write_lesson_log(&dir, true),
            "the direction reads, it does not write"
        );
        assert!(may_read_class_log(&dir, ClassFacts { teaches: false }));
        assert!(!may_read_class_log(&cpe, ClassFacts { teaches: false }));
        assert!(may_read_pupil_log(&t, taught) && may_read_pupil_log(&parent, child));
        assert!(!may_read_pupil_log(&tech, PersonFacts::default()));
    }
}
