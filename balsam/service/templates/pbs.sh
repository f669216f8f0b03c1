#!/bin/bash
#PBS -N balsam-$launch_id
#PBS -l select=$nodes
#PBS -l walltime=$walltime_hms
#PBS -q $queue
#PBS -o $output_path
#PBS -j oe
$account_directive
# Balsam launch $launch_id: $job_mode mode
$umask_command
$activate_command
export BALSAM_DB_PATH=$db_path
export BALSAM_QUEUED_LAUNCH_ID=$launch_id
exec $balsam launcher $scope_args --job-mode $job_mode --time-limit-minutes $launcher_minutes --until-idle
