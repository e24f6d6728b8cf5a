-- Staff training records (both seeds): courses, versioned (a row is a version; a change is a
-- new row); a new edition (the `edition` label changes) asks everyone to complete it again.
-- Completions are self-declared through the course's quiz, or recorded by a DSL or IT admin.
-- Reminders sent by email are recorded so that nobody is reminded more often than configured.
-- All append-only. People get an email address (for reminders) and a team (for the report
-- per team).

ALTER TABLE users ADD COLUMN email TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN team TEXT NOT NULL DEFAULT '';

CREATE TABLE training_courses (
    id INTEGER PRIMARY KEY,
    course_id INTEGER NOT NULL,
    at_ms BIGINT NOT NULL,
    by_user TEXT NOT NULL,
    title TEXT NOT NULL,
    edition TEXT NOT NULL,
    about TEXT NOT NULL,
    link TEXT NOT NULL,
    -- Console role slugs and group names, space-separated: who must complete it.
    roles TEXT NOT NULL,
    groups TEXT NOT NULL,
    -- 0: never renewed.
    renew_days INTEGER NOT NULL,
    -- Days to complete it after it is first required of someone.
    within_days INTEGER NOT NULL,
    -- Empty: completions are recorded by a DSL or IT admin only.
    quiz TEXT NOT NULL,
    pass_percent INTEGER NOT NULL,
    retired INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX training_courses_course ON training_courses (course_id, id);
CREATE TRIGGER training_courses_no_update BEFORE UPDATE ON training_courses
BEGIN SELECT RAISE(ABORT, 'courses keep their history: save a new version'); END;
CREATE TRIGGER training_courses_no_delete BEFORE DELETE ON training_courses
BEGIN SELECT RAISE(ABORT, 'courses keep their history: save a new version'); END;

CREATE TABLE training_completions (
    id INTEGER PRIMARY KEY,
    course_id INTEGER NOT NULL,
    edition TEXT NOT NULL,
    username TEXT NOT NULL,
    completed_ms BIGINT NOT NULL,
    -- 'quiz' (self-declared, quiz passed) or 'recorded' (by a DSL or IT admin).
    how TEXT NOT NULL,
    score INTEGER NOT NULL,
    out_of INTEGER NOT NULL,
    by_user TEXT NOT NULL,
    note TEXT NOT NULL,
    at_ms BIGINT NOT NULL
);
CREATE INDEX training_completions_user ON training_completions (username, course_id);
CREATE INDEX training_completions_course ON training_completions (course_id, edition);
CREATE TRIGGER training_completions_no_update BEFORE UPDATE ON training_completions
BEGIN SELECT RAISE(ABORT, 'training records are append-only'); END;
CREATE TRIGGER training_completions_no_delete BEFORE DELETE ON training_completions
BEGIN SELECT RAISE(ABORT, 'training records are append-only'); END;

CREATE TABLE training_reminders (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    -- How many courses the message listed.
    courses INTEGER NOT NULL,
    -- Empty when the mail server took it, else why not.
    error TEXT NOT NULL
);
CREATE INDEX training_reminders_user ON training_reminders (username, at_ms);
CREATE TRIGGER training_reminders_no_update BEFORE UPDATE ON training_reminders
BEGIN SELECT RAISE(ABORT, 'reminders are append-only'); END;
