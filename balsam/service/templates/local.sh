#!/bin/bash
# Balsam launch $launch_id on this machine: $nodes node(s), $wall_minutes min, $job_mode mode
$umask_command
$activate_command
export BALSAM_DB_PATH=$db_path
export BALSAM_QUEUED_LAUNCH_ID=$launch_id
exec $balsam launcher $scope_args --job-mode $job_mode --time-limit-minutes $launcher_minutes --until-idle
