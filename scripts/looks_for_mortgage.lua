-- looks_for_mortgage: actively shopping for a mortgage within 30 days.
-- Two signals from mortgage searches, bank mortgage pages and calculator
-- uses; a sent mortgage application counts twice.
local SEARCHES = filter {
  type = "search",
  within_days = 30,
  query_contains = { "ипотек", "ипотечн", "mortgage", "кредит на квартиру", "семейная ипотека" },
}
local PAGES = filter {
  type = { "page_view", "click" },
  within_days = 30,
  url_contains = { "/ipoteka", "/mortgage", "/hypothec", "ipoteka." },
}
local APPLICATIONS = filter {
  type = "form_submit",
  within_days = 30,
  url_contains = { "/ipoteka", "/mortgage" },
}

return segment_script {
  name = "looks_for_mortgage",
  version = "2.0.0",
  description = "Mortgage searches, bank mortgage pages and applications within 30 days",
  segments = { "looks_for_mortgage" },
  evaluate = function(user)
    local signals = user:count(SEARCHES) + user:count(PAGES) + 2 * user:count(APPLICATIONS)
    if signals >= 2 then return { "looks_for_mortgage" } end
    return {}
  end,
}
