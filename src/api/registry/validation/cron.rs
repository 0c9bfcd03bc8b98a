//! CronJob schedules as validation sees them: the schedule must parse the
//! way robfig/cron's `ParseStandard` does ([`CronSchedule`], shared with the
//! CronJob controller), with its error texts, which upstream puts verbatim
//! into the field error; a `TZ=`/`CRON_TZ=` zone is checked for shape only
//! (the apiserver has no tz database).

use crate::api::cron_schedule::CronSchedule;

/// Parses a standard cron spec; `Err` carries robfig/cron's message.
pub(crate) fn parse_standard(spec: &str) -> Result<(), String> {
    let schedule = CronSchedule::parse(spec).map_err(|e| e.to_string())?;
    if let Some(tz) = schedule.zone_name()
        && !time_zone_shape_ok(tz)
    {
        return Err(format!(
            "provided bad location {tz}: unknown time zone {tz}"
        ));
    }
    Ok(())
}

/// The time-zone name rule upstream applies before `time.LoadLocation`.
pub(crate) fn time_zone_shape_ok(tz: &str) -> bool {
    !tz.is_empty()
        && tz.split('/').all(|part| {
            part != "."
                && part != ".."
                && !part.starts_with('-')
                && (1..=14).contains(&part.len())
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_schedules_parse() {
        for ok in [
            "*/5 * * * *",
            "0 0 * * *",
            "0 9-17 * * mon-fri",
            "@hourly",
            "@every 1h30m",
            "15 2 1,15 jan,jul ?",
        ] {
            assert_eq!(parse_standard(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn bad_schedules_report_robfig_messages() {
        assert_eq!(
            parse_standard("* * *"),
            Err("expected exactly 5 fields, found 3: [* * *]".into())
        );
        assert_eq!(
            parse_standard("60 * * * *"),
            Err("end of range (60) above maximum (59): 60".into())
        );
        assert_eq!(
            parse_standard("@often"),
            Err("unrecognized descriptor: @often".into())
        );
        assert_eq!(
            parse_standard("x * * * *"),
            Err("failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax".into())
        );
        assert_eq!(
            parse_standard("5-1 * * * *"),
            Err("beginning of range (5) beyond end of range (1): 5-1".into())
        );
        assert_eq!(
            parse_standard("*/0 * * * *"),
            Err("step of range should be a positive number: */0".into())
        );
        assert_eq!(parse_standard(""), Err("empty spec string".into()));
        assert!(
            parse_standard("@every 5x")
                .is_err_and(|e| e.starts_with("failed to parse duration @every 5x"))
        );
        assert_eq!(
            parse_standard("0 0 * * 7"),
            Err("end of range (7) above maximum (6): 7".into())
        );
    }
}
