-- expand: human names of a form task, read from the model once per definition when the form is created
ALTER TABLE form_tasks ADD COLUMN IF NOT EXISTS task_name text;
ALTER TABLE form_tasks ADD COLUMN IF NOT EXISTS process_name text;
ALTER TABLE form_tasks ADD COLUMN IF NOT EXISTS form_title text;
ALTER TABLE form_tasks ADD COLUMN IF NOT EXISTS context text;
