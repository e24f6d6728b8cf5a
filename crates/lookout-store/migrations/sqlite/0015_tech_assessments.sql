-- Risk assessments of new technologies before use (both seeds): what it is, who asked, the
-- data it holds, risks, mitigations, the decision and conditions, the reviewer and the date
-- of the next review. Every change is a new version; nothing is changed or deleted.

CREATE TABLE tech_assessments (
    id INTEGER PRIMARY KEY,
    assessment_id INTEGER NOT NULL,
    at_ms BIGINT NOT NULL,
    by_user TEXT NOT NULL,
    name TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    data_held TEXT NOT NULL,
    risks TEXT NOT NULL,
    mitigations TEXT NOT NULL,
    decision TEXT NOT NULL,
    conditions TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    review_due_ms BIGINT NOT NULL
);
CREATE INDEX tech_assessments_assessment ON tech_assessments (assessment_id, id);
CREATE TRIGGER tech_assessments_no_update BEFORE UPDATE ON tech_assessments
BEGIN SELECT RAISE(ABORT, 'the register keeps its history: add a new version'); END;
CREATE TRIGGER tech_assessments_no_delete BEFORE DELETE ON tech_assessments
BEGIN SELECT RAISE(ABORT, 'the register keeps its history: add a new version'); END;
