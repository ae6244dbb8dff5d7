package jsonscan

// internKey returns the constant for a key PostHog sends on nearly every event, so decoding it
// allocates nothing.
func internKey(raw []byte) (string, bool) {
	switch string(raw) {
	case "$os":
		return "$os", true
	case "$os_version":
		return "$os_version", true
	case "$browser":
		return "$browser", true
	case "$browser_version":
		return "$browser_version", true
	case "$device_type":
		return "$device_type", true
	case "$timezone":
		return "$timezone", true
	case "$timezone_offset":
		return "$timezone_offset", true
	case "$current_url":
		return "$current_url", true
	case "$host":
		return "$host", true
	case "$pathname":
		return "$pathname", true
	case "$raw_user_agent":
		return "$raw_user_agent", true
	case "$browser_language":
		return "$browser_language", true
	case "$browser_language_prefix":
		return "$browser_language_prefix", true
	case "$screen_height":
		return "$screen_height", true
	case "$screen_width":
		return "$screen_width", true
	case "$viewport_height":
		return "$viewport_height", true
	case "$viewport_width":
		return "$viewport_width", true
	case "$lib":
		return "$lib", true
	case "$lib_version":
		return "$lib_version", true
	case "$lib_custom_api_host":
		return "$lib_custom_api_host", true
	case "$insert_id":
		return "$insert_id", true
	case "$time":
		return "$time", true
	case "$device_id":
		return "$device_id", true
	case "distinct_id":
		return "distinct_id", true
	case "$referrer":
		return "$referrer", true
	case "$referring_domain":
		return "$referring_domain", true
	case "$session_entry_url":
		return "$session_entry_url", true
	case "$session_entry_host":
		return "$session_entry_host", true
	case "$session_entry_pathname":
		return "$session_entry_pathname", true
	case "$session_entry_referrer":
		return "$session_entry_referrer", true
	case "$session_entry_referring_domain":
		return "$session_entry_referring_domain", true
	case "token":
		return "token", true
	case "$session_id":
		return "$session_id", true
	case "$window_id":
		return "$window_id", true
	case "$configured_session_timeout_ms":
		return "$configured_session_timeout_ms", true
	case "$recording_status":
		return "$recording_status", true
	case "$autocapture_disabled_server_side":
		return "$autocapture_disabled_server_side", true
	case "$dead_clicks_enabled_server_side":
		return "$dead_clicks_enabled_server_side", true
	case "$web_vitals_enabled_server_side":
		return "$web_vitals_enabled_server_side", true
	case "$exception_capture_enabled_server_side":
		return "$exception_capture_enabled_server_side", true
	case "$sdk_debug_retry_queue_size":
		return "$sdk_debug_retry_queue_size", true
	case "$config_defaults":
		return "$config_defaults", true
	case "$pageview_id":
		return "$pageview_id", true
	case "title":
		return "title", true
	case "$is_identified":
		return "$is_identified", true
	case "$process_person_profile":
		return "$process_person_profile", true
	case "$ip":
		return "$ip", true
	case "$event_type":
		return "$event_type", true
	case "$ce_version":
		return "$ce_version", true
	case "$el_text":
		return "$el_text", true
	case "$elements_chain":
		return "$elements_chain", true
	case "$elements":
		return "$elements", true
	case "$user_id":
		return "$user_id", true
	case "$anon_distinct_id":
		return "$anon_distinct_id", true
	case "$prev_pageview_id":
		return "$prev_pageview_id", true
	case "$prev_pageview_pathname":
		return "$prev_pageview_pathname", true
	case "$prev_pageview_duration":
		return "$prev_pageview_duration", true
	case "$prev_pageview_last_scroll":
		return "$prev_pageview_last_scroll", true
	case "$prev_pageview_last_scroll_percentage":
		return "$prev_pageview_last_scroll_percentage", true
	case "$prev_pageview_max_scroll":
		return "$prev_pageview_max_scroll", true
	case "$prev_pageview_max_scroll_percentage":
		return "$prev_pageview_max_scroll_percentage", true
	case "$prev_pageview_last_content":
		return "$prev_pageview_last_content", true
	case "$prev_pageview_last_content_percentage":
		return "$prev_pageview_last_content_percentage", true
	case "$prev_pageview_max_content":
		return "$prev_pageview_max_content", true
	case "$prev_pageview_max_content_percentage":
		return "$prev_pageview_max_content_percentage", true
	case "$active_feature_flags":
		return "$active_feature_flags", true
	case "$feature_flag":
		return "$feature_flag", true
	case "$feature_flag_response":
		return "$feature_flag_response", true
	case "$groups":
		return "$groups", true
	case "$set":
		return "$set", true
	case "$set_once":
		return "$set_once", true
	case "$exception_list":
		return "$exception_list", true
	case "$exception_level":
		return "$exception_level", true
	case "$geoip_disable":
		return "$geoip_disable", true
	case "$console_log_recording_enabled_server_side":
		return "$console_log_recording_enabled_server_side", true
	case "$session_recording_canvas_recording":
		return "$session_recording_canvas_recording", true
	case "$replay_sample_rate":
		return "$replay_sample_rate", true
	case "$replay_script_config":
		return "$replay_script_config", true
	case "$session_recording_network_payload_capture":
		return "$session_recording_network_payload_capture", true
	case "$screen_name":
		return "$screen_name", true
	case "$initial_referrer":
		return "$initial_referrer", true
	case "$initial_referring_domain":
		return "$initial_referring_domain", true
	case "$initial_current_url":
		return "$initial_current_url", true
	case "$initial_host":
		return "$initial_host", true
	case "$initial_pathname":
		return "$initial_pathname", true
	case "email":
		return "email", true
	case "name":
		return "name", true
	case "tag_name":
		return "tag_name", true
	case "classes":
		return "classes", true
	case "attr__class":
		return "attr__class", true
	case "attr__id":
		return "attr__id", true
	case "attr__href":
		return "attr__href", true
	case "attr__type":
		return "attr__type", true
	case "attr__name":
		return "attr__name", true
	case "attr__data-attr":
		return "attr__data-attr", true
	case "attr__role":
		return "attr__role", true
	case "nth_child":
		return "nth_child", true
	case "nth_of_type":
		return "nth_of_type", true
	case "uuid":
		return "uuid", true
	case "event":
		return "event", true
	case "properties":
		return "properties", true
	case "timestamp":
		return "timestamp", true
	case "offset":
		return "offset", true
	}
	return "", false
}
