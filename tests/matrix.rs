//! The authorization matrix: every declared route × every role (and anonymous) × own/other
//! object, with the expected allow or deny. A route missing from the matrix fails the test.

mod common;

use common::{Browser, TestServer, extra_session, hex, location};
use kekeli::policy::Role;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Obj {
    None,
    Person,
    Class,
    Account,
    /// A room (the same for own and other).
    Room,
    /// A session (occurrence): own = taught by the demo teacher, other = not.
    Session,
    /// An absence: own = of the demo parent's child, other = of an unrelated pupil.
    Absence,
    /// A lesson-log entry: own = written by the demo teacher (for a pupil or parent: in the
    /// pupil's class), other = another teacher's, in a class none of them belongs to.
    LogEntry,
    /// A document attached to such an entry.
    Attachment,
    /// An incident: own = reported by the demo teacher, other = by the vie scolaire about an
    /// unrelated pupil.
    Incident,
    /// A sanction (the same for own and other).
    Sanction,
    /// An agenda event: own = for everyone, other = for the staff only.
    Event,
    /// A booking: own = the demo teacher's, other = someone else's.
    Booking,
    /// An assessment: own = the demo teacher's, other = another teacher's.
    Assessment,
    /// A course (class × subject): own = taught by the demo teacher, other = by someone else.
    Course,
    /// A class for its council: own = the demo teacher is its professeur principal.
    CouncilClass,
    /// A period that is not the current one (closing it disturbs nothing else).
    Period,
    /// A competence of the preloaded framework (the same for own and other).
    Competence,
    /// An issued bulletin: own = of the asker (the pupil, the parent's child, a pupil of the
    /// teacher's class as its principal), other = of an unrelated pupil.
    Bulletin,
    /// A domain of the preloaded framework (the same for own and other).
    Domain,
    /// An absence with a justification and its document, waiting for vie scolaire: own = of
    /// the demo parent's child, other = of an unrelated pupil.
    Justification,
    /// A conversation: own = one the asker is in (someone wrote to them), other = between two
    /// other people.
    Conversation,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Anonymous,
    As(Role),
}

type Rule = fn(Role, bool) -> bool;

struct Entry {
    method: &'static str,
    path: &'static str,
    obj: Obj,
    /// `None`: public (anyone, logged in or not). `Some(rule)`: logged-in users for whom
    /// `rule(role, own_object)` is true; anonymous visitors are sent to the login page.
    rule: Option<Rule>,
    /// Form fields for POST routes (the CSRF token is added).
    form: &'static [(&'static str, &'static str)],
    /// Sent as multipart/form-data (uploads).
    multipart: bool,
}

fn everyone(_: Role, _: bool) -> bool {
    true
}
fn technician(r: Role, _: bool) -> bool {
    r == Role::Technicien
}
fn account_managers(r: Role, _: bool) -> bool {
    matches!(r, Role::Technicien | Role::Secretariat | Role::Direction)
}
fn school_wide(r: Role) -> bool {
    matches!(r, Role::Direction | Role::VieScolaire | Role::Secretariat)
}
fn class_lists(r: Role, _: bool) -> bool {
    school_wide(r) || r == Role::Enseignant
}
fn one_class(r: Role, own: bool) -> bool {
    school_wide(r) || (r == Role::Enseignant && own)
}
fn one_person(r: Role, own: bool) -> bool {
    own || school_wide(r)
}
fn people_editors(r: Role, _: bool) -> bool {
    r == Role::Secretariat
}

/// Staff who may look at any class's, teacher's or room's timetable.
fn timetables(r: Role) -> bool {
    matches!(
        r,
        Role::Enseignant
            | Role::VieScolaire
            | Role::Secretariat
            | Role::Direction
            | Role::Technicien
    )
}
fn staff_timetables(r: Role, _: bool) -> bool {
    timetables(r)
}
fn pupil_timetable(r: Role, own: bool) -> bool {
    own || timetables(r)
}
fn has_timetable(r: Role, _: bool) -> bool {
    r != Role::Invite
}
/// Messages: everyone of the school but a guest; a conversation only for its members.
fn messaging(r: Role, _: bool) -> bool {
    r != Role::Invite
}
fn conversation(r: Role, own: bool) -> bool {
    own && r != Role::Invite
}
fn structure(r: Role, _: bool) -> bool {
    matches!(r, Role::Secretariat | Role::Direction)
}
fn session_page(r: Role, own: bool) -> bool {
    structure(r, own) || r == Role::VieScolaire || (r == Role::Enseignant && own)
}
fn roll_call(r: Role, own: bool) -> bool {
    r == Role::VieScolaire || (r == Role::Enseignant && own)
}
fn roll_call_list(r: Role, _: bool) -> bool {
    matches!(r, Role::VieScolaire | Role::Enseignant)
}
fn school_attendance(r: Role, _: bool) -> bool {
    matches!(r, Role::VieScolaire | Role::Direction)
}
fn pupil_attendance(r: Role, own: bool) -> bool {
    own || matches!(r, Role::VieScolaire | Role::Direction)
}
fn justify(r: Role, own: bool) -> bool {
    r == Role::Parent && own
}
fn decide(r: Role, _: bool) -> bool {
    r == Role::VieScolaire
}
fn justification_document(r: Role, own: bool) -> bool {
    matches!(r, Role::VieScolaire | Role::Direction) || justify(r, own)
}

/// Imports: people files need account managers, structure files the secrétariat or direction.
fn people_imports(r: Role, _: bool) -> bool {
    matches!(r, Role::Technicien | Role::Secretariat | Role::Direction)
}
fn any_imports(r: Role, _: bool) -> bool {
    matches!(r, Role::Technicien | Role::Secretariat | Role::Direction)
}

/// Lesson log.
fn journal_index(r: Role, _: bool) -> bool {
    matches!(
        r,
        Role::Eleve | Role::Parent | Role::Enseignant | Role::Direction
    )
}
fn journal_session(r: Role, own: bool) -> bool {
    r == Role::Direction || (r == Role::Enseignant && own)
}
/// A pupil ticks homework of their own classes' log, nobody else.
fn homework_tick(r: Role, own: bool) -> bool {
    r == Role::Eleve && own
}
fn journal_author(r: Role, own: bool) -> bool {
    r == Role::Enseignant && own
}
fn direction(r: Role, _: bool) -> bool {
    r == Role::Direction
}
/// Marks.
fn marks_index(r: Role, _: bool) -> bool {
    matches!(
        r,
        Role::Eleve | Role::Parent | Role::Enseignant | Role::Direction
    )
}
fn teachers(r: Role, _: bool) -> bool {
    r == Role::Enseignant
}
fn assessment_view(r: Role, own: bool) -> bool {
    r == Role::Direction || (r == Role::Enseignant && own)
}
fn own_teaching(r: Role, own: bool) -> bool {
    r == Role::Enseignant && own
}
fn bulletin_printers(r: Role, own: bool) -> bool {
    matches!(r, Role::Direction | Role::Secretariat) || (r == Role::Enseignant && own)
}
fn bulletin(r: Role, own: bool) -> bool {
    own || matches!(r, Role::Direction | Role::Secretariat)
}
fn pupil_marks(r: Role, own: bool) -> bool {
    own || r == Role::Direction
}

fn pupil_log(r: Role, own: bool) -> bool {
    own || r == Role::Direction
}
fn journal_document(r: Role, own: bool) -> bool {
    r == Role::Direction || (own && matches!(r, Role::Enseignant | Role::Eleve | Role::Parent))
}

/// Discipline.
fn reporters(r: Role, _: bool) -> bool {
    matches!(r, Role::Enseignant | Role::VieScolaire | Role::Direction)
}
fn incident_rule(r: Role, own: bool) -> bool {
    matches!(r, Role::VieScolaire | Role::Direction) || (r == Role::Enseignant && own)
}
fn discipline_record(r: Role, own: bool) -> bool {
    (own && r != Role::Enseignant) || matches!(r, Role::VieScolaire | Role::Direction)
}

/// Agenda and bookings.
fn agenda_managers(r: Role, _: bool) -> bool {
    matches!(r, Role::Direction | Role::Secretariat | Role::VieScolaire)
}
fn agenda_event(r: Role, own: bool) -> bool {
    own || r.is_staff()
}
fn bookers(r: Role, _: bool) -> bool {
    matches!(
        r,
        Role::Enseignant
            | Role::VieScolaire
            | Role::Secretariat
            | Role::Direction
            | Role::Technicien
    )
}
fn booking_owner(r: Role, own: bool) -> bool {
    r == Role::Direction || (r == Role::Enseignant && own)
}

fn matrix() -> Vec<Entry> {
    use Obj::*;
    let e = |method, path, obj, rule, form| Entry {
        method,
        path,
        obj,
        rule,
        form,
        multipart: false,
    };
    vec![
        e("GET", "/healthz", None, Option::None, &[]),
        e("GET", "/metrics", None, Option::None, &[]),
        e("GET", "/ca", None, Option::None, &[]),
        e("GET", "/ca.crt", None, Option::None, &[]),
        e("GET", "/static/{name}", None, Option::None, &[]),
        e("GET", "/connexion", None, Option::None, &[]),
        e(
            "POST",
            "/connexion",
            None,
            Option::None,
            &[("login", "personne"), ("password", "x")],
        ),
        e("GET", "/", None, Some(everyone as Rule), &[]),
        e("GET", "/mot-de-passe", None, Some(everyone), &[]),
        e("GET", "/compte/codes", None, Some(everyone), &[]),
        e(
            "POST",
            "/mot-de-passe",
            None,
            Some(everyone),
            &[
                ("current", "{password}"),
                ("new", "Matrice-{n}-Baobab"),
                ("confirm", "Matrice-{n}-Baobab"),
            ],
        ),
        e("GET", "/personnes/{id}", Person, Some(one_person), &[]),
        e(
            "GET",
            "/personnes/{id}/modifier",
            Person,
            Some(people_editors),
            &[],
        ),
        e(
            "POST",
            "/personnes/{id}/modifier",
            Person,
            Some(people_editors),
            &[("nom", "KOFFI"), ("prenoms", "Ama Matrice"), ("sexe", "F")],
        ),
        e("GET", "/classes", None, Some(class_lists), &[]),
        e("GET", "/classes/{id}", Class, Some(one_class), &[]),
        e("GET", "/admin", None, Some(technician), &[]),
        e("GET", "/admin/sauvegardes", None, Some(technician), &[]),
        e("POST", "/admin/sauvegardes", None, Some(technician), &[]),
        e("GET", "/admin/synchronisation", None, Some(technician), &[]),
        e(
            "POST",
            "/admin/synchronisation",
            None,
            Some(technician),
            &[],
        ),
        e(
            "POST",
            "/admin/synchronisation/inscription",
            None,
            Some(technician),
            &[("url", ""), ("token", "")],
        ),
        e(
            "POST",
            "/admin/synchronisation/conflits",
            None,
            Some(technician),
            &[("id", "1"), ("choice", "garder")],
        ),
        e(
            "POST",
            "/admin/synchronisation/paquet",
            None,
            Some(technician),
            &[],
        ),
        Entry {
            multipart: true,
            ..e(
                "POST",
                "/admin/synchronisation/paquet/depot",
                None,
                Some(technician),
                &[],
            )
        },
        e("GET", "/sauvegardes/fiche", None, Some(direction), &[]),
        e("POST", "/sauvegardes/fiche", None, Some(direction), &[]),
        e("GET", "/admin/comptes", None, Some(account_managers), &[]),
        e(
            "GET",
            "/admin/comptes/nouveau",
            None,
            Some(account_managers),
            &[],
        ),
        e(
            "POST",
            "/admin/comptes",
            None,
            Some(account_managers),
            &[
                ("surname", "NOUVEAU"),
                ("first_names", "Essi"),
                ("role", "invite"),
            ],
        ),
        e(
            "GET",
            "/admin/comptes/{id}",
            Account,
            Some(account_managers),
            &[],
        ),
        e(
            "POST",
            "/admin/comptes/{id}/desactiver",
            Account,
            Some(account_managers),
            &[],
        ),
        e(
            "POST",
            "/admin/comptes/{id}/reactiver",
            Account,
            Some(account_managers),
            &[],
        ),
        e(
            "POST",
            "/admin/comptes/{id}/code",
            Account,
            Some(account_managers),
            &[],
        ),
        e(
            "POST",
            "/admin/fiches",
            None,
            Some(account_managers),
            &[("classe", "{other_class}"), ("which", "all")],
        ),
        e("GET", "/emploi-du-temps", None, Some(has_timetable), &[]),
        e(
            "GET",
            "/emploi-du-temps/eleve/{id}",
            Person,
            Some(pupil_timetable),
            &[],
        ),
        e(
            "GET",
            "/emploi-du-temps/classe/{id}",
            Class,
            Some(staff_timetables),
            &[],
        ),
        e(
            "GET",
            "/emploi-du-temps/enseignant/{id}",
            Person,
            Some(staff_timetables),
            &[],
        ),
        e(
            "GET",
            "/emploi-du-temps/salle/{id}",
            Room,
            Some(staff_timetables),
            &[],
        ),
        e(
            "POST",
            "/emploi-du-temps/creneaux",
            None,
            Some(structure),
            &[
                ("class_id", "{other_class}"),
                ("subject_id", "{subject}"),
                ("weekday", "6"),
                ("starts", "17:00"),
                ("ends", "18:00"),
            ],
        ),
        e(
            "GET",
            "/emploi-du-temps/seance/{occ}",
            Session,
            Some(session_page),
            &[],
        ),
        e(
            "POST",
            "/emploi-du-temps/seance/{occ}",
            Session,
            Some(structure),
            &[("action", "rien")],
        ),
        e("GET", "/emploi-du-temps/agenda", None, Some(everyone), &[]),
        e("POST", "/emploi-du-temps/agenda", None, Some(everyone), &[]),
        e(
            "POST",
            "/emploi-du-temps/agenda/revoquer",
            None,
            Some(everyone),
            &[],
        ),
        e("GET", "/ical/{token}", None, Option::None, &[]),
        e("GET", "/imports", None, Some(any_imports), &[]),
        e(
            "GET",
            "/imports/{kind}/modele",
            None,
            Some(people_imports),
            &[],
        ),
        Entry {
            multipart: true,
            ..e(
                "POST",
                "/imports/{kind}/apercu",
                None,
                Some(people_imports),
                &[],
            )
        },
        e(
            "POST",
            "/imports/{kind}/appliquer",
            None,
            Some(people_imports),
            &[("fichier", "{file}"), ("nom", "eleves.csv")],
        ),
        e("GET", "/cahier-de-textes", None, Some(journal_index), &[]),
        e(
            "GET",
            "/cahier-de-textes/seance/{occ}",
            Session,
            Some(journal_session),
            &[],
        ),
        Entry {
            multipart: true,
            ..e(
                "POST",
                "/cahier-de-textes/seance/{occ}",
                Session,
                Some(journal_author),
                &[("contenu", "Cours : les fractions.")],
            )
        },
        e(
            "POST",
            "/cahier-de-textes/entree/{id}/visa",
            Obj::LogEntry,
            Some(direction),
            &[],
        ),
        e(
            "GET",
            "/cahier-de-textes/piece/{id}",
            Attachment,
            Some(journal_document),
            &[],
        ),
        e(
            "POST",
            "/cahier-de-textes/piece/{id}/retirer",
            Attachment,
            Some(journal_author),
            &[],
        ),
        e(
            "POST",
            "/cahier-de-textes/devoir/{id}/fait",
            Obj::LogEntry,
            Some(homework_tick),
            &[("fait", "1")],
        ),
        e(
            "POST",
            "/cahier-de-textes/entree/{id}/supprimer",
            Obj::LogEntry,
            Some(journal_author),
            &[],
        ),
        e(
            "GET",
            "/cahier-de-textes/classe/{id}",
            Class,
            Some(journal_session),
            &[],
        ),
        e(
            "POST",
            "/cahier-de-textes/classe/{id}/visa",
            Class,
            Some(direction),
            &[("du", "{year}-09-01"), ("au", "{next_year}-07-31")],
        ),
        e(
            "GET",
            "/cahier-de-textes/eleve/{id}",
            Person,
            Some(pupil_log),
            &[],
        ),
        e("GET", "/discipline", None, Some(reporters), &[]),
        e(
            "GET",
            "/discipline/incidents/nouveau",
            None,
            Some(reporters),
            &[],
        ),
        e("POST", "/discipline/incidents", None, Some(reporters), &[]),
        e(
            "GET",
            "/discipline/incident/{id}",
            Incident,
            Some(incident_rule),
            &[],
        ),
        e(
            "POST",
            "/discipline/incident/{id}/punition",
            Incident,
            Some(incident_rule),
            &[("type", "inconnu")],
        ),
        e(
            "POST",
            "/discipline/incident/{id}/sanction",
            Incident,
            Some(direction),
            &[("type", "inconnu")],
        ),
        e(
            "POST",
            "/discipline/sanction/{id}/annuler",
            Sanction,
            Some(direction),
            &[("motif", "Erreur de saisie")],
        ),
        e(
            "GET",
            "/discipline/eleve/{id}",
            Person,
            Some(discipline_record),
            &[],
        ),
        e(
            "POST",
            "/etablissement/salles",
            None,
            Some(structure),
            &[("nom", "Salle polyvalente"), ("reservable", "on")],
        ),
        e(
            "POST",
            "/etablissement/materiel",
            None,
            Some(structure),
            &[("nom", "Sono")],
        ),
        e(
            "POST",
            "/etablissement/groupes",
            None,
            Some(structure),
            &[("classe", "{other_class}")],
        ),
        e("GET", "/agenda", None, Some(everyone), &[]),
        e("GET", "/agenda/nouveau", None, Some(agenda_managers), &[]),
        e(
            "POST",
            "/agenda",
            None,
            Some(agenda_managers),
            &[
                ("titre", "Réunion {n}"),
                ("type", "reunion"),
                ("du", "{today}"),
                ("public", "tous"),
            ],
        ),
        e("GET", "/agenda/{id}", Event, Some(agenda_event), &[]),
        e(
            "POST",
            "/agenda/{id}",
            Event,
            Some(agenda_managers),
            &[
                ("titre", "Réunion"),
                ("type", "reunion"),
                ("du", "{event_day}"),
                ("public", "{audience}"),
            ],
        ),
        e(
            "POST",
            "/agenda/{id}/supprimer",
            Event,
            Some(agenda_managers),
            &[],
        ),
        e("GET", "/notes", None, Some(marks_index), &[]),
        e("GET", "/notes/parametres", None, Some(direction), &[]),
        e(
            "POST",
            "/notes/parametres",
            None,
            Some(direction),
            &[
                ("poids_classe", "1"),
                ("poids_composition", "1"),
                ("composition_manquante", "moyenne"),
                ("absent_zero", "1"),
                ("decimales", "2"),
                ("arrondi", "superieur"),
                ("annuelle", ""),
                ("appreciations", "10 Passable\n0 Insuffisant"),
                ("distinctions", "12 Tableau d'honneur"),
            ],
        ),
        e(
            "POST",
            "/notes/periode/{id}/cloturer",
            Period,
            Some(direction),
            &[],
        ),
        e(
            "POST",
            "/notes/periode/{id}/rouvrir",
            Period,
            Some(direction),
            &[],
        ),
        e(
            "GET",
            "/notes/nouvelle",
            None,
            Some(teachers),
            &[("cours", "{teacher_course}")],
        ),
        e(
            "POST",
            "/notes/evaluations",
            None,
            Some(teachers),
            &[
                ("cours", "{teacher_course}"),
                ("periode", "{period}"),
                ("kind", "devoir"),
                ("date", "{today}"),
                ("bareme", "20"),
            ],
        ),
        e(
            "GET",
            "/notes/evaluation/{id}",
            Assessment,
            Some(assessment_view),
            &[],
        ),
        e(
            "POST",
            "/notes/evaluation/{id}",
            Assessment,
            Some(own_teaching),
            &[],
        ),
        e(
            "POST",
            "/notes/evaluation/{id}/publier",
            Assessment,
            Some(own_teaching),
            &[],
        ),
        e(
            "GET",
            "/notes/evaluation/{id}/export.csv",
            Assessment,
            Some(assessment_view),
            &[],
        ),
        e(
            "GET",
            "/notes/evaluation/{id}/export.xlsx",
            Assessment,
            Some(assessment_view),
            &[],
        ),
        Entry {
            multipart: true,
            ..e(
                "POST",
                "/notes/evaluation/{id}/import",
                Assessment,
                Some(own_teaching),
                &[],
            )
        },
        e(
            "POST",
            "/notes/evaluation/{id}/supprimer",
            Assessment,
            Some(own_teaching),
            &[],
        ),
        e("GET", "/notes/eleve/{id}", Person, Some(pupil_marks), &[]),
        e(
            "GET",
            "/notes/appreciations/{course}",
            Course,
            Some(own_teaching),
            &[],
        ),
        e(
            "POST",
            "/notes/appreciations/{course}/{period}",
            Course,
            Some(own_teaching),
            &[],
        ),
        e(
            "GET",
            "/conseil/{class}",
            CouncilClass,
            Some(assessment_view),
            &[],
        ),
        e(
            "POST",
            "/conseil/{class}/{period}",
            CouncilClass,
            Some(assessment_view),
            &[],
        ),
        e(
            "GET",
            "/conseil/{class}/{period}/resultats.csv",
            CouncilClass,
            Some(assessment_view),
            &[],
        ),
        e(
            "GET",
            "/conseil/{class}/{period}/resultats.pdf",
            CouncilClass,
            Some(assessment_view),
            &[],
        ),
        e(
            "POST",
            "/conseil/{class}/{period}/cloturer",
            CouncilClass,
            Some(direction),
            &[],
        ),
        e(
            "POST",
            "/conseil/{class}/{period}/rouvrir",
            CouncilClass,
            Some(direction),
            &[],
        ),
        e(
            "GET",
            "/bulletins/classe/{class}",
            CouncilClass,
            Some(bulletin_printers),
            &[],
        ),
        e(
            "POST",
            "/bulletins/classe/{class}/{period}/emettre",
            CouncilClass,
            Some(direction),
            &[],
        ),
        e(
            "GET",
            "/bulletins/classe/{class}/{period}/bulletins.pdf",
            CouncilClass,
            Some(bulletin_printers),
            &[],
        ),
        e(
            "GET",
            "/bulletins/classe/{class}/{period}/bulletins.zip",
            CouncilClass,
            Some(bulletin_printers),
            &[],
        ),
        e("GET", "/bulletins/{id}", Bulletin, Some(bulletin), &[]),
        e("GET", "/bulletins/ecole", None, Some(direction), &[]),
        e("POST", "/bulletins/ecole", None, Some(direction), &[]),
        e("GET", "/bulletins/logo", None, Some(direction), &[]),
        Entry {
            multipart: true,
            ..e("POST", "/bulletins/logo", None, Some(direction), &[])
        },
        e("GET", "/competences", None, Some(everyone), &[]),
        e(
            "GET",
            "/competences/classe/{class}",
            Class,
            Some(assessment_view),
            &[],
        ),
        e(
            "POST",
            "/competences/classe/{class}/{domain}",
            Class,
            Some(assessment_view),
            &[],
        ),
        e(
            "GET",
            "/competences/eleve/{id}",
            Person,
            Some(pupil_log),
            &[],
        ),
        e(
            "GET",
            "/competences/eleve/{id}/attestation",
            Person,
            Some(pupil_log),
            &[],
        ),
        e(
            "GET",
            "/competences/referentiels",
            None,
            Some(direction),
            &[],
        ),
        e(
            "POST",
            "/competences/referentiels",
            None,
            Some(direction),
            &[("domaine", "{domain}"), ("code", "X{n}"), ("nom", "Essai")],
        ),
        e(
            "POST",
            "/competences/competence/{id}",
            Competence,
            Some(direction),
            &[("nom", "Utiliser l'ordinateur")],
        ),
        e(
            "POST",
            "/competences/competence/{id}/supprimer",
            Competence,
            Some(direction),
            &[],
        ),
        e(
            "POST",
            "/competences/domaines",
            None,
            Some(direction),
            &[
                ("referentiel", "{framework}"),
                ("code", "DX{n}"),
                ("nom", "Essai"),
            ],
        ),
        // The framework's first domain: renamed (to its own name), never deleted (it still
        // has competences: refused with the reason, a redirect).
        e(
            "POST",
            "/competences/domaine/{id}",
            Domain,
            Some(direction),
            &[("nom", "{domain_name}")],
        ),
        e(
            "POST",
            "/competences/domaine/{id}/supprimer",
            Domain,
            Some(direction),
            &[],
        ),
        e("GET", "/messages", None, Some(messaging), &[]),
        e("GET", "/messages/nouveau", None, Some(messaging), &[]),
        e(
            "POST",
            "/messages",
            None,
            Some(messaging),
            &[("action", "chercher"), ("cherche", "a")],
        ),
        e("GET", "/messages/regles", None, Some(direction), &[]),
        e(
            "POST",
            "/messages/regles",
            None,
            Some(direction),
            &[("calme_de", "20:00"), ("calme_a", "07:00")],
        ),
        e(
            "GET",
            "/messages/{id}",
            Conversation,
            Some(conversation),
            &[],
        ),
        e(
            "POST",
            "/messages/{id}/repondre",
            Conversation,
            Some(conversation),
            &[("texte", "Bien reçu, merci.")],
        ),
        e(
            "POST",
            "/messages/{id}/corbeille",
            Conversation,
            Some(conversation),
            &[],
        ),
        e(
            "POST",
            "/messages/{id}/signaler",
            Conversation,
            Some(conversation),
            &[("message", "{message}"), ("motif", "Insultant")],
        ),
        e("GET", "/messages/signalements", None, Some(direction), &[]),
        // A report's id (a conversation's here: handling an unknown report changes nothing).
        e(
            "POST",
            "/messages/signalements/{id}",
            Conversation,
            Some(direction),
            &[],
        ),
        e("GET", "/reservations", None, Some(bookers), &[]),
        e(
            "GET",
            "/reservations/ressource/{id}",
            Room,
            Some(bookers),
            &[],
        ),
        e(
            "POST",
            "/reservations/ressource/{id}",
            Room,
            Some(bookers),
            &[],
        ),
        e(
            "POST",
            "/reservations/{id}/decision",
            Booking,
            Some(direction),
            &[("decision", "refuser")],
        ),
        e(
            "POST",
            "/reservations/{id}/annuler",
            Booking,
            Some(booking_owner),
            &[],
        ),
        e("GET", "/appel", None, Some(roll_call_list), &[]),
        e("GET", "/appel/{occ}", Session, Some(roll_call), &[]),
        e("POST", "/appel/{occ}", Session, Some(roll_call), &[]),
        e("GET", "/absences", None, Some(school_attendance), &[]),
        e(
            "GET",
            "/absences/eleve/{id}",
            Person,
            Some(pupil_attendance),
            &[],
        ),
        e(
            "GET",
            "/absences/{id}/justifier",
            Absence,
            Some(justify),
            &[],
        ),
        Entry {
            multipart: true,
            ..e(
                "POST",
                "/absences/{id}/justifier",
                Absence,
                Some(justify),
                &[("reason", "Malade, certificat à venir")],
            )
        },
        e(
            "POST",
            "/absences/{id}/decision",
            Justification,
            Some(decide),
            &[("decision", "accepter")],
        ),
        e(
            "POST",
            "/absences/decisions",
            None,
            Some(decide),
            &[("ids", "{justification}")],
        ),
        e(
            "GET",
            "/absences/{id}/document",
            Justification,
            Some(justification_document),
            &[],
        ),
        e(
            "GET",
            "/absences/{id}/apercu",
            Justification,
            Some(justification_document),
            &[],
        ),
        e("GET", "/etablissement", None, Some(structure), &[]),
        e(
            "POST",
            "/etablissement/annees",
            None,
            Some(structure),
            &[
                ("name", "20{n}-20{n}"),
                ("starts_on", "2090-09-14"),
                ("ends_on", "2091-07-15"),
            ],
        ),
        // Last: it ends the session used for the rows above.
        e("POST", "/deconnexion", None, Some(everyone), &[]),
    ]
}

fn q1(server: &TestServer, sql: &str, p: &dyn rusqlite::ToSql) -> Vec<u8> {
    server
        .db
        .read_blocking(|c| {
            c.query_row(sql, [p], |r| r.get::<_, Vec<u8>>(0))
                .map_err(kekeli::db::DbError::from)
        })
        .expect(sql)
}

struct Objects {
    own_conversation: String,
    other_conversation: String,
    own_message: String,
    other_message: String,
    own_person: String,
    other_person: String,
    own_class: String,
    other_class: String,
    account: String,
    room: String,
    own_session: String,
    other_session: String,
    own_absence: String,
    other_absence: String,
    own_entry: String,
    other_entry: String,
    own_attachment: String,
    other_attachment: String,
    own_incident: String,
    other_incident: String,
    sanction: String,
    own_event: String,
    other_event: String,
    own_booking: String,
    other_booking: String,
    own_assessment: String,
    other_assessment: String,
    own_course: String,
    other_course: String,
    period: String,
    other_period: String,
    own_bulletin: String,
    other_bulletin: String,
    domain: String,
    domain_name: String,
    framework: String,
    competence: String,
    own_justification: String,
    other_justification: String,
    /// A subject, a course of the logged-in teacher, the stored sample pupils file.
    subject: String,
    teacher_course: String,
    file: String,
    password: String,
}

/// An agenda event for `audience` ("tous" or "personnel").
fn event_for(server: &TestServer, audience: &str) -> String {
    let audience = audience.to_string();
    let id = server
        .db
        .write_blocking(move |tx| {
            let by: [u8; 16] = tx.query_row(
                "SELECT person_id FROM person_roles WHERE role = 'direction' LIMIT 1",
                [],
                |r| r.get(0),
            )?;
            kekeli::agenda::store::create(
                tx,
                "school:TEST",
                &kekeli::agenda::store::NewEvent {
                    title: "Réunion".into(),
                    kind: "reunion".into(),
                    starts_on: common::in_year("12-09"),
                    ends_on: common::in_year("12-09"),
                    times: None,
                    audience,
                    class_id: None,
                    place: String::new(),
                    description: String::new(),
                },
                &by,
            )
        })
        .expect("event");
    hex(&id)
}

/// A booking of the first room by `person`, waiting for approval.
/// The current lycée period and another one of the year.
fn periods(server: &TestServer) -> (Vec<u8>, Vec<u8>) {
    let current = q1(
        server,
        "SELECT id FROM periods WHERE cycle = 'lycee' ORDER BY (starts_on <= ?1 AND ends_on >= ?1) DESC, starts_on DESC LIMIT 1",
        &common::today(),
    );
    let other = q1(
        server,
        "SELECT id FROM periods WHERE cycle = 'lycee' AND id <> ?1 LIMIT 1",
        &current,
    );
    (current, other)
}

/// A new assessment by `teacher` in one of their classes, and its course key.
fn assessment_by(server: &TestServer, teacher: &[u8], period: &[u8]) -> (String, String) {
    let (teacher, period) = (teacher.to_vec(), period.to_vec());
    let id = kekeli::db::new_id();
    let (class, subject) = server
        .db
        .write_blocking(move |tx| {
            tx.query_row(
                "INSERT INTO assessments (id, scope, period_id, class_id, subject_id, teacher_id, kind, title, on_date, scale, created_at, updated_at) \
                 SELECT ?1, scope, ?2, class_id, subject_id, teacher_id, 'devoir', 'matrice', ?4, 20, 0, 0 \
                 FROM teachings WHERE teacher_id = ?3 AND class_id IS NOT NULL LIMIT 1 RETURNING class_id, subject_id",
                (&id[..], &period, &teacher, common::in_year("10-01")),
                |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?)),
            )
            .map_err(kekeli::db::DbError::from)
        })
        .expect("assessment");
    (hex(&id), format!("{}-{}", hex(&class), hex(&subject)))
}

/// An issued bulletin of `pupil` in `class` for `period`, its PDF in the content store.
fn bulletin_of(server: &TestServer, pupil: &[u8], class: &[u8], period: &[u8]) -> String {
    let store = kekeli::files::Store::new(server.config.data_dir.join("store"));
    let sha = store
        .put(format!("%PDF-1.7 matrice {}", hex(pupil)).as_bytes())
        .expect("store");
    let (pupil, class, period) = (pupil.to_vec(), class.to_vec(), period.to_vec());
    let id = kekeli::db::new_id();
    server
        .db
        .write_blocking(move |tx| {
            tx.execute(
                "INSERT INTO bulletins (id, scope, pupil_id, period_id, class_id, version, pdf_sha256, numbers, numbers_sha256, issued_at) \
                 VALUES (?1, 'school:TEST', ?2, ?3, ?4, 1 + (SELECT COUNT(*) FROM bulletins WHERE pupil_id = ?2 AND period_id = ?3), ?5, '{}', 'x', 0)",
                (&id[..], &pupil, &period, &class, &sha),
            )
            .map_err(kekeli::db::DbError::from)
        })
        .expect("bulletin");
    hex(&id)
}

/// Make `teacher` the professeur principal of `class` (the demo picks its own principals).
fn make_principal(server: &TestServer, teacher: &[u8], class: &[u8]) {
    let (teacher, class) = (teacher.to_vec(), class.to_vec());
    server
        .db
        .write_blocking(move |tx| {
            tx.execute(
                "INSERT OR IGNORE INTO class_members (id, scope, class_id, person_id, role) VALUES (?1, 'school:TEST', ?2, ?3, 'principal')",
                (&kekeli::db::new_id()[..], &class, &teacher),
            )
            .map_err(kekeli::db::DbError::from)
        })
        .expect("principal");
}

fn booking_by(server: &TestServer, person: &[u8]) -> String {
    let person = person.to_vec();
    let id = kekeli::db::new_id();
    server
        .db
        .write_blocking(move |tx| {
            tx.execute(
                "INSERT INTO bookings (id, scope, room_id, on_date, starts, ends, purpose, booked_by, status, created_at) \
                 VALUES (?1, 'school:TEST', (SELECT id FROM rooms LIMIT 1), ?3, 600, 660, 'test', ?2, 'demandee', 0)",
                (&id[..], &person, common::in_year("12-10")),
            )
            .map_err(kekeli::db::DbError::from)
        })
        .expect("booking");
    hex(&id)
}

/// An incident about `pupil` reported by `reporter`, with a sanction.
fn incident_about(server: &TestServer, reporter: &[u8], pupil: &[u8]) -> (String, String) {
    use kekeli::discipline::store::{self as ds, Actor, NewIncident, NewSanction};
    let reporter: [u8; 16] = reporter.try_into().expect("id");
    let pupil: [u8; 16] = pupil.try_into().expect("id");
    server
        .db
        .write_blocking(|tx| {
            let by = Actor {
                person: &reporter,
                ip: "test",
            };
            let incident = ds::create_incident(
                tx,
                "school:TEST",
                &NewIncident {
                    on_date: common::in_year("11-02"),
                    at_minutes: None,
                    place: "Cour".into(),
                    description: "Dispute".into(),
                    people: vec![(pupil, "auteur".into())],
                },
                &by,
            )?;
            let sanction = ds::decide(
                tx,
                "school:TEST",
                &NewSanction {
                    pupil,
                    incident: Some(incident),
                    kind: "avertissement".into(),
                    days: None,
                    decided_on: common::in_year("11-03"),
                    starts_on: None,
                    reason: "Dispute".into(),
                },
                &by,
            )?;
            Ok::<_, kekeli::db::DbError>((hex(&incident), hex(&sanction)))
        })
        .expect("incident")
}

/// A lesson-log entry with one attached PDF for the session `occ`, written by its teacher.
fn entry_with_document(server: &TestServer, occ: &str) -> (String, String) {
    use kekeli::timetable::store::{OccKey, occurrence};
    let key = OccKey::decode(occ).expect("occ");
    let store = kekeli::files::Store::new(server.config.data_dir.join("store"));
    let hash = store.put(b"%PDF-1.4 fiche d'exercices").expect("store");
    server
        .db
        .write_blocking(|tx| {
            let o = occurrence(tx, key)?.expect("session");
            let teacher = o.teacher_id.expect("teacher");
            let (entry, _) = kekeli::journal::store::save(
                tx,
                "school:TEST",
                &o,
                &teacher,
                &kekeli::journal::store::Draft {
                    content: "Cours".into(),
                    ..Default::default()
                },
            )?;
            kekeli::journal::store::add_attachment(
                tx,
                "school:TEST",
                &entry,
                &hash,
                "fiche.pdf",
                "application/pdf",
                26,
            )?;
            let attachment: [u8; 16] = tx.query_row(
                "SELECT id FROM lesson_attachments WHERE entry_id = ?1",
                [&entry[..]],
                |r| r.get(0),
            )?;
            Ok::<_, kekeli::db::DbError>((hex(&entry), hex(&attachment)))
        })
        .expect("entry")
}

/// An unjustified absence of `pupil`, made for the test.
fn absence_of(server: &TestServer, pupil: &[u8]) -> String {
    let pupil = pupil.to_vec();
    let id = kekeli::db::new_id();
    server
        .db
        .write_blocking(|tx| {
            tx.execute(
                "INSERT INTO absences (id, scope, pupil_id, kind, on_date, starts, minutes, created_at, updated_at) \
                 VALUES (?1, 'school:TEST', ?2, 'absence', ?3, 420, 110, 0, 0)",
                (&id[..], &pupil, common::in_year("11-02")),
            )
            .map_err(kekeli::db::DbError::from)
        })
        .expect("absence");
    hex(&id)
}

fn objects_for(server: &TestServer, who: Who) -> Objects {
    let login_person = |role: Role| {
        q1(
            server,
            "SELECT person_id FROM accounts WHERE login = ?1",
            &server.login_of(role).login,
        )
    };
    let teacher = login_person(Role::Enseignant);
    let own_class = q1(
        server,
        "SELECT class_id FROM class_members WHERE person_id = ?1 AND role = 'enseignant' LIMIT 1",
        &teacher,
    );
    let other_class = q1(
        server,
        "SELECT id FROM classes WHERE id NOT IN (SELECT class_id FROM class_members WHERE person_id = ?1) LIMIT 1",
        &teacher,
    );
    // A pupil with no link to any featured account: in a class the teacher does not teach.
    let other_person = q1(
        server,
        "SELECT person_id FROM class_members WHERE class_id = ?1 AND role = 'eleve' LIMIT 1",
        &other_class,
    );
    let account = q1(
        server,
        "SELECT a.id FROM accounts a JOIN class_members m ON m.person_id = a.person_id WHERE m.class_id = ?1 AND m.role = 'eleve' LIMIT 1 OFFSET 1",
        &other_class,
    );
    let own_person = match who {
        Who::As(Role::Parent) => q1(
            server,
            "SELECT child_id FROM guardianships WHERE parent_id = ?1",
            &login_person(Role::Parent),
        ),
        Who::As(Role::Enseignant) => q1(
            server,
            "SELECT person_id FROM class_members WHERE class_id = ?1 AND role = 'eleve' LIMIT 1",
            &own_class,
        ),
        Who::As(r) => login_person(r),
        Who::Anonymous => other_person.clone(),
    };
    let child = q1(
        server,
        "SELECT child_id FROM guardianships WHERE parent_id = ?1",
        &login_person(Role::Parent),
    );
    let room = q1(server, "SELECT id FROM rooms WHERE name <> ?1 LIMIT 1", &"");
    let other_teacher = q1(
        server,
        "SELECT person_id FROM class_members WHERE class_id = ?1 AND role = 'enseignant' LIMIT 1",
        &other_class,
    );
    // The lesson-log entries: for a pupil or a parent, "own" is in the pupil's class; "other" is
    // in a class that neither the teacher nor the featured pupil belongs to.
    let pupil = login_person(Role::Eleve);
    let pupil_class = q1(
        server,
        "SELECT class_id FROM class_members WHERE person_id = ?1 AND role = 'eleve'",
        &pupil,
    );
    let entry_class = match who {
        Who::As(Role::Eleve | Role::Parent) => pupil_class.clone(),
        _ => own_class.clone(),
    };
    let far_class = {
        let (t, p) = (teacher.clone(), pupil_class.clone());
        server
            .db
            .read_blocking(move |c| {
                c.query_row(
                    "SELECT id FROM classes WHERE id NOT IN (SELECT class_id FROM class_members WHERE person_id = ?1) AND id <> ?2 LIMIT 1",
                    (&t, &p),
                    |r| r.get::<_, Vec<u8>>(0),
                )
                .map_err(kekeli::db::DbError::from)
            })
            .expect("far class")
    };
    let far_teacher = q1(
        server,
        "SELECT person_id FROM class_members WHERE class_id = ?1 AND role = 'enseignant' LIMIT 1",
        &far_class,
    );
    let (own_entry, own_attachment) =
        entry_with_document(server, &extra_session(server, &teacher, &entry_class));
    let (other_entry, other_attachment) =
        entry_with_document(server, &extra_session(server, &far_teacher, &far_class));
    let cpe = login_person(Role::VieScolaire);
    let taught_pupil = q1(
        server,
        "SELECT person_id FROM class_members WHERE class_id = ?1 AND role = 'eleve' LIMIT 1",
        &own_class,
    );
    let (own_incident, _) = incident_about(server, &teacher, &taught_pupil);
    let (other_incident, sanction) = incident_about(server, &cpe, &other_person);
    let direction_person = login_person(Role::Direction);
    let (period, other_period) = periods(server);
    let (own_assessment, own_course) = assessment_by(server, &teacher, &period);
    let own_course_key = own_course.clone();
    let (other_assessment, other_course) = assessment_by(server, &far_teacher, &period);
    make_principal(server, &teacher, &own_class);
    // The demo closed the featured class's semester; the matrix checks the open-period rights.
    server
        .db
        .write_blocking(|tx| {
            tx.execute("DELETE FROM class_period_closures", [])
                .map_err(kekeli::db::DbError::from)
        })
        .expect("reopen");
    let own_bulletin = bulletin_of(server, &own_person, &own_class, &period);
    let other_bulletin = bulletin_of(server, &other_person, &other_class, &period);
    let asker = match who {
        Who::As(r) => login_person(r),
        Who::Anonymous => teacher.clone(),
    };
    let writer = if asker == cpe {
        direction_person.clone()
    } else {
        cpe.clone()
    };
    let (own_conversation, own_message) = conversation_between(server, &writer, &asker);
    let (other_conversation, other_message) =
        conversation_between(server, &far_teacher, &other_person);
    Objects {
        own_conversation,
        other_conversation,
        own_message,
        other_message,
        domain: hex(&q1(
            server,
            "SELECT id FROM competence_domains WHERE code = ?1",
            &"D1",
        )),
        competence: hex(&q1(
            server,
            "SELECT id FROM competences WHERE code = ?1",
            &"C1.1",
        )),
        own_bulletin,
        other_bulletin,
        own_assessment,
        other_assessment,
        own_course,
        other_course,
        period: hex(&period),
        other_period: hex(&other_period),
        own_event: event_for(server, "tous"),
        other_event: event_for(server, "personnel"),
        own_booking: booking_by(server, &teacher),
        other_booking: booking_by(server, &direction_person),
        own_incident,
        other_incident,
        sanction,
        own_entry,
        other_entry,
        own_attachment,
        other_attachment,
        own_person: hex(&own_person),
        other_person: hex(&other_person),
        own_class: hex(&own_class),
        other_class: hex(&other_class),
        account: hex(&account),
        room: hex(&room),
        own_session: extra_session(server, &teacher, &own_class),
        other_session: extra_session(server, &other_teacher, &other_class),
        own_absence: absence_of(server, &child),
        other_absence: absence_of(server, &other_person),
        own_justification: justified_absence_of(server, &child),
        other_justification: justified_absence_of(server, &other_person),
        domain_name: server
            .db
            .read_blocking(|c| {
                c.query_row(
                    "SELECT name FROM competence_domains WHERE code = 'D1'",
                    [],
                    |r| r.get(0),
                )
                .map_err(kekeli::db::DbError::from)
            })
            .expect("domain name"),
        framework: hex(&q1(
            server,
            "SELECT framework_id FROM competence_domains WHERE code = ?1",
            &"D1",
        )),
        subject: hex(&q1(
            server,
            "SELECT id FROM subjects WHERE name <> ?1 LIMIT 1",
            &"",
        )),
        teacher_course: own_course_key.clone(),
        file: sample_file(server),
        password: match who {
            Who::As(r) => server.login_of(r).password.clone(),
            Who::Anonymous => String::new(),
        },
    }
}

/// An absence of `pupil` with a justification and a document, waiting for a decision.
fn justified_absence_of(server: &TestServer, pupil: &[u8]) -> String {
    let store = kekeli::files::Store::new(server.config.data_dir.join("store"));
    let hash = store.put(b"%PDF-1.4 certificat medical").expect("document");
    let pupil = pupil.to_vec();
    let id = kekeli::db::new_id();
    server
        .db
        .write_blocking(|tx| {
            tx.execute(
                "INSERT INTO absences (id, scope, pupil_id, kind, on_date, starts, minutes, status, reason, document, document_name, created_at, updated_at) \
                 VALUES (?1, 'school:TEST', ?2, 'absence', ?3, 420, 110, 'en_attente', 'Malade', ?4, 'certificat.pdf', 0, 0)",
                (&id[..], &pupil, common::in_year("11-03"), &hash),
            )
            .map_err(kekeli::db::DbError::from)
        })
        .expect("justified absence");
    hex(&id)
}

/// A conversation `writer` started with `reader`, with one message: (conversation, message).
fn conversation_between(server: &TestServer, writer: &[u8], reader: &[u8]) -> (String, String) {
    let (w, r) = (writer.to_vec(), reader.to_vec());
    let id = kekeli::db::new_id();
    let message = kekeli::db::new_id();
    server
        .db
        .write_blocking(|tx| {
            tx.execute(
                "INSERT INTO conversations (id, scope, subject, started_by, started_at, last_at) VALUES (?1, 'school:TEST', 'Réunion', ?2, 1, 1)",
                (&id[..], &w),
            )?;
            for p in [&w, &r] {
                tx.execute(
                    "INSERT INTO conversation_members (id, scope, conversation_id, person_id) VALUES (?1, 'school:TEST', ?2, ?3)",
                    (&kekeli::db::new_id()[..], &id[..], p),
                )?;
            }
            tx.execute(
                "INSERT INTO messages (id, scope, conversation_id, author_id, body, sent_at, deliver_at) VALUES (?1, 'school:TEST', ?2, ?3, 'Bonjour', 1, 1)",
                (&message[..], &id[..], &w),
            )
            .map_err(kekeli::db::DbError::from)
        })
        .expect("conversation");
    (hex(&id), hex(&message))
}

/// The shipped sample pupils file, in the content store as a preview leaves it.
fn sample_file(server: &TestServer) -> String {
    kekeli::files::Store::new(server.config.data_dir.join("store"))
        .put(kekeli::imports::Kind::Pupils.sample().as_bytes())
        .expect("sample")
}

fn concrete(path: &str, obj: Obj, own: bool, o: &Objects) -> String {
    let id = match (obj, own) {
        (Obj::Person, true) => &o.own_person,
        (Obj::Person, false) => &o.other_person,
        (Obj::Class, true) => &o.own_class,
        (Obj::Class, false) => &o.other_class,
        (Obj::Account, _) => &o.account,
        (Obj::Room, _) => &o.room,
        (Obj::Session, true) => &o.own_session,
        (Obj::Session, false) => &o.other_session,
        (Obj::Absence, true) => &o.own_absence,
        (Obj::Absence, false) => &o.other_absence,
        (Obj::LogEntry, true) => &o.own_entry,
        (Obj::LogEntry, false) => &o.other_entry,
        (Obj::Attachment, true) => &o.own_attachment,
        (Obj::Attachment, false) => &o.other_attachment,
        (Obj::Incident, true) => &o.own_incident,
        (Obj::Incident, false) => &o.other_incident,
        (Obj::Sanction, _) => &o.sanction,
        (Obj::Event, true) => &o.own_event,
        (Obj::Event, false) => &o.other_event,
        (Obj::Booking, true) => &o.own_booking,
        (Obj::Booking, false) => &o.other_booking,
        (Obj::Assessment, true) => &o.own_assessment,
        (Obj::Assessment, false) => &o.other_assessment,
        (Obj::Course, true) => &o.own_course,
        (Obj::Course, false) => &o.other_course,
        (Obj::CouncilClass, true) => &o.own_class,
        (Obj::CouncilClass, false) => &o.other_class,
        (Obj::Period, _) => &o.other_period,
        (Obj::Competence, _) => &o.competence,
        (Obj::Bulletin, true) => &o.own_bulletin,
        (Obj::Bulletin, false) => &o.other_bulletin,
        (Obj::Domain, _) => &o.domain,
        (Obj::Justification, true) => &o.own_justification,
        (Obj::Justification, false) => &o.other_justification,
        (Obj::Conversation, true) => &o.own_conversation,
        (Obj::Conversation, false) => &o.other_conversation,
        (Obj::None, _) => "",
    };
    path.replace("{id}", id)
        .replace("{class}", id)
        .replace("{course}", id)
        .replace("{period}", &o.period)
        .replace("{domain}", &o.domain)
        .replace("{occ}", id)
        .replace("{token}", "0123456789abcdef0123456789abcdef")
        .replace("{name}", "app.css")
        .replace("{kind}", "eleves")
}

async fn status_of(b: &Browser, e: &Entry, path: &str, own: bool, o: &Objects) -> (u16, String) {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(10);
    let n = N
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        .to_string();
    let fields: Vec<(&str, String)> = e
        .form
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace("{other_class}", &o.other_class)
                .replace("{year}", &common::school_year().to_string())
                .replace("{next_year}", &(common::school_year() + 1).to_string())
                .replace("{today}", &common::today())
                .replace("{event_day}", &common::in_year("12-09"))
                .replace("{audience}", if own { "tous" } else { "personnel" })
                .replace(
                    "{message}",
                    if own {
                        &o.own_message
                    } else {
                        &o.other_message
                    },
                )
                .replace("{subject}", &o.subject)
                .replace("{teacher_course}", &o.teacher_course)
                .replace("{period}", &o.period)
                .replace("{domain_name}", &o.domain_name)
                .replace("{domain}", &o.domain)
                .replace("{framework}", &o.framework)
                .replace("{file}", &o.file)
                .replace(
                    "{justification}",
                    if own {
                        &o.own_justification
                    } else {
                        &o.other_justification
                    },
                )
                .replace("{password}", &o.password)
                .replace("{n}", &n);
            (*k, v)
        })
        .collect();
    let refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = if e.method == "GET" {
        if refs.is_empty() {
            b.get(path).await
        } else {
            let q = serde_urlencoded::to_string(&refs).expect("query");
            b.get(&format!("{path}?{q}")).await
        }
    } else if e.multipart {
        // Uploads carry a real file: the sample pupils file, or the school's logo.
        let file = if let Some(grid) = path.strip_suffix("/import") {
            // A grid takes back its own export (for whoever may read it).
            let csv = b.get(&format!("{grid}/export.csv")).await;
            let bytes = if csv.status() == 200 {
                csv.bytes().await.expect("csv").to_vec()
            } else {
                b"Matricule;Nom et pr\xc3\xa9noms;Note\n".to_vec()
            };
            ("fichier", "notes.csv", bytes)
        } else if path.starts_with("/bulletins/logo") {
            (
                "logo",
                "logo.png",
                std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/logo.png"))
                    .expect("logo"),
            )
        } else {
            (
                "fichier",
                "eleves.csv",
                kekeli::imports::Kind::Pupils.sample().as_bytes().to_vec(),
            )
        };
        b.post_multipart(path, &refs, Some(file)).await
    } else {
        b.post(path, &refs).await
    };
    (r.status().as_u16(), location(&r))
}

#[tokio::test]
async fn every_route_every_role_own_and_other() {
    let declared = kekeli::app::route_table();
    let m = matrix();
    for d in &declared {
        assert!(
            m.iter().any(|e| e.method == d.method && e.path == d.path),
            "route {} {} is missing from the authorization matrix",
            d.method,
            d.path
        );
    }
    for e in &m {
        assert!(
            declared
                .iter()
                .any(|d| d.method == e.method && d.path == e.path),
            "matrix entry {} {} is not a declared route",
            e.method,
            e.path
        );
    }

    let server = TestServer::start().await;
    // The school has a logo (the direction's page shows it, and uploads a new one).
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/logo.png"),
        server.config.data_dir.join("logo"),
    )
    .expect("logo");
    // C1.1, the competence the matrix uses, has a recorded level: deleting it is then refused
    // (a redirect with the reason), so it is still there for the next role.
    server
        .db
        .write_blocking(|tx| {
            tx.execute(
                "INSERT INTO competence_records (id, scope, pupil_id, competence_id, level, on_date, recorded_at) \
                 SELECT ?1, 'school:TEST', (SELECT person_id FROM person_roles WHERE role = 'eleve' LIMIT 1), \
                        id, 'acquis', ?2, 0 FROM competences WHERE code = 'C1.1'",
                (&kekeli::db::new_id()[..], common::in_year("11-23")),
            )
            .map_err(kekeli::db::DbError::from)
        })
        .expect("a level for C1.1");
    let mut whos = vec![Who::Anonymous];
    whos.extend(Role::ALL.iter().map(|r| Who::As(*r)));
    let mut failures = Vec::new();
    let mut checked = 0;
    for who in whos {
        let b = match who {
            Who::Anonymous => server.browser(),
            Who::As(r) => server.logged_in(r).await,
        };
        let o = objects_for(&server, who);
        for e in &m {
            let owns: &[bool] = if e.obj == Obj::None {
                &[true]
            } else {
                &[true, false]
            };
            for &own in owns {
                let path = concrete(e.path, e.obj, own, &o);
                let (status, loc) = status_of(&b, e, &path, own, &o).await;
                checked += 1;
                let verdict = match (e.rule, who) {
                    (None, _) => {
                        if status == 403 || loc.starts_with("/connexion") {
                            Some("public route refused")
                        } else {
                            None
                        }
                    }
                    (Some(_), Who::Anonymous) => {
                        if status == 303 && loc.starts_with("/connexion") {
                            None
                        } else {
                            Some("anonymous not sent to login")
                        }
                    }
                    (Some(rule), Who::As(role)) => {
                        let to_login = loc == "/connexion" || loc.starts_with("/connexion?next=");
                        // Allowed means the page or the action itself (2xx, 3xx), not only
                        // "not refused": a 400 or a 404 proves nothing about the rule.
                        let allowed = (200..400).contains(&status) && !to_login;
                        let denied = status == 403 || status == 404 || to_login;
                        match (rule(role, own), allowed, denied) {
                            (true, true, _) | (false, false, true) => None,
                            (true, false, true) => Some("expected allow, got deny"),
                            (true, false, false) => Some("expected the page or the action"),
                            (false, true, _) => Some("expected deny, got allow"),
                            (false, false, false) => {
                                Some("expected deny (403), got another refusal")
                            }
                        }
                    }
                };
                if let Some(why) = verdict {
                    failures.push(format!(
                        "{who:?} {} {} (own={own}) → {status} {loc}: {why}",
                        e.method, e.path
                    ));
                }
                assert!(status < 500, "{who:?} {} {path} gave {status}", e.method);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "authorization matrix failures:\n{}",
        failures.join("\n")
    );
    assert!(checked > 200, "only {checked} checks");
    server.stop().await;
}

#[tokio::test]
async fn every_post_route_refuses_a_missing_or_forged_csrf_token() {
    let server = TestServer::start().await;
    // Each route is tried as a role it allows, so the refusal can only be the CSRF check's.
    let mut browsers: Vec<(Role, Browser, Objects)> = Vec::new();
    for e in matrix().iter().filter(|e| e.method == "POST") {
        let role = match e.rule {
            Some(rule) => *Role::ALL
                .iter()
                .find(|r| rule(**r, true))
                .expect("a role allowed"),
            None => Role::Technicien,
        };
        if !browsers.iter().any(|(r, _, _)| *r == role) {
            let b = server.logged_in(role).await;
            let o = objects_for(&server, Who::As(role));
            browsers.push((role, b, o));
        }
        let (_, b, o) = browsers
            .iter()
            .find(|(r, _, _)| *r == role)
            .expect("browser");
        let path = concrete(e.path, e.obj, true, o);
        for body in ["", "csrf=00000000000000000000000000000000"] {
            let r = b
                .post_raw(
                    &path,
                    body.as_bytes().to_vec(),
                    "application/x-www-form-urlencoded",
                )
                .await;
            assert_eq!(
                r.status(),
                403,
                "POST {path} as {role:?} with body {body:?}"
            );
            let text = r.text().await.expect("body");
            assert!(
                text.contains("Formulaire expiré"),
                "French page for {path} as {role:?}: {text}"
            );
        }
        // A cross-site POST is refused even with the right token.
        let csrf = b.csrf().await;
        let r = b
            .client
            .post(b.url(&path))
            .header("origin", "https://evil.example")
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .expect("POST");
        assert_eq!(r.status(), 403, "cross-origin POST {path}");
    }
    // The sessions are still alive: none of the refused POSTs logged them out.
    for (role, b, _) in &browsers {
        assert_eq!(b.get("/").await.status(), 200, "{role:?} still logged in");
    }
    server.stop().await;
}
