-- What each feature lets the others read (db::owners): views over its own tables, narrower than
-- them, whose columns and rules the owner keeps when its tables change. A feature's SQL reads
-- another's data only through these (or calls the owner's functions), and writes only its own.

-- people: names for lists and headings, the matricule, whether the person left.
CREATE VIEW person_names AS
    SELECT id, first_names || ' ' || surname AS name, surname || ' ' || first_names AS sort_name,
           surname, first_names, coalesce(matricule, '') AS matricule, left_on
    FROM people;
-- people: what a bulletin or a certificate prints about a person.
CREATE VIEW person_details AS SELECT id, sex, birth_date, birth_place FROM people;
-- people: the pupils enrolled in each class, nouveau (0) or redoublant (1).
CREATE VIEW enrolments AS
    SELECT class_id, person_id AS pupil_id, repeating FROM class_members WHERE role = 'eleve';
-- people: what "the pupils of" a class or a group means, in one place.
CREATE VIEW audience_pupils AS
    SELECT class_id AS audience_id, person_id AS pupil_id FROM class_members WHERE role = 'eleve'
    UNION ALL SELECT group_id, person_id FROM group_members;
-- people: the pupils of each group.
CREATE VIEW group_enrolments AS SELECT group_id, person_id AS pupil_id FROM group_members;
-- people: the teachers and the professeur principal of each class.
CREATE VIEW class_staff AS
    SELECT class_id, person_id, role FROM class_members WHERE role IN ('enseignant', 'principal');
-- people: who is the legal guardian of whom.
CREATE VIEW guardians AS SELECT parent_id, child_id, relation FROM guardianships;
-- people: the roles people hold.
CREATE VIEW role_holders AS SELECT person_id, role FROM person_roles;

-- school: the structure every feature shows and files things under.
CREATE VIEW class_list AS
    SELECT c.id, c.name, c.level, c.serie, c.letter, c.room_id,
           coalesce(l.cycle, 'lycee') AS cycle, coalesce(l.rank, 99) AS level_rank
    FROM classes c LEFT JOIN levels l ON l.code = c.level;
CREATE VIEW group_list AS SELECT id, name, class_id FROM pupil_groups;
CREATE VIEW subject_list AS SELECT id, code, name, domain, rank FROM subjects;
CREATE VIEW room_list AS SELECT id, name, kind, capacity, bookable, needs_approval FROM rooms;
CREATE VIEW equipment_list AS
    SELECT id, name, kind, room_id, bookable, needs_approval FROM equipment;
CREATE VIEW year_list AS SELECT id, name, starts_on, ends_on, week_a_monday FROM school_years;
CREATE VIEW period_list AS
    SELECT id, school_year_id, cycle, number, name, starts_on, ends_on, closed_at FROM periods;
CREATE VIEW class_closures AS SELECT class_id, period_id, closed_at FROM class_period_closures;
CREATE VIEW teaching_list AS
    SELECT id, school_year_id, teacher_id, class_id, group_id, subject_id, hours_per_week
    FROM teachings;
CREATE VIEW coefficient_list AS
    SELECT school_year_id, level, serie, subject_id, coefficient FROM coefficients;

-- auth: whether a person's account may still be used.
CREATE VIEW account_states AS SELECT id, person_id, login, disabled FROM accounts;
