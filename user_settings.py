"""Balsam user settings: plain constants, one per line, the unit in the comment.

Every setting can be overridden for one process by an environment variable
BALSAM_<NAME IN CAPITALS>, e.g. BALSAM_LOG_LEVEL=DEBUG. Unknown names are refused.
"""

# Balsam DB directory used when neither --db nor BALSAM_DB_PATH is given
# (None: the repository's default_balsamdb/). A path; ~ is expanded.
default_db_path = None

# How long a direct SQLite writer waits for the file lock before failing (seconds).
sqlite_busy_timeout_sec = 30

# Level of the log files under <DB>/log/ (DEBUG, INFO, WARNING, ERROR).
log_level = "INFO"

# Size at which a log file is rotated (MiB), and how many rotated files are kept (count).
log_max_mib = 100
log_backup_count = 5

# How long a write may keep retrying an unreachable dbserver before it fails (seconds).
dbserver_deadline_sec = 60

# How long a new process waits for a dbserver to answer its first ping (seconds).
dbserver_ping_timeout_sec = 3

# A launcher that stops heartbeating for this long loses its jobs to other launchers;
# its RUNNING jobs become RESTART_READY (seconds).
launcher_lease_expiry_sec = 180

# Longest a preprocess/postprocess script or file transfer may run (seconds).
launcher_script_timeout_sec = 300

# How many times a job that ran past its own wall time is rerun before it fails.
launcher_max_timeout_retries = 5

# Scheduled backups: every this many minutes a running dbserver copies the DB to
# <DB>/backups/<UTC time>.sqlite3 (0: none), keeping the newest backup_keep of them (count).
backup_interval_minutes = 0
backup_keep = 7

# The batch scheduler the service submits launches to: local, slurm, pbs or cobalt
# (a DB's service.json may name another).
scheduler = "local"
