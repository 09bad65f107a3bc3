-- frequent_traveller: travels often.
-- Travel activity (flight/train/hotel sites, travel searches) on >= 4
-- distinct days within 90 days, or >= 2 travel purchases within 180 days.
local TRAVEL_HOSTS = { "aviasales.ru", "tutu.ru", "ostrovok.ru", "booking.com", "airbnb.com",
                       "skyscanner.net", "s7.ru", "aeroflot.ru", "pobeda.aero", "rzd.ru" }
local TRAVEL_VISITS = filter {
  type = { "page_view", "click", "app_open" },
  within_days = 90,
  host = TRAVEL_HOSTS,
}
local TRAVEL_SEARCHES = filter {
  type = "search",
  within_days = 90,
  query_contains = { "авиабилет", "билеты на самолет", "отель в", "гостиница", "flights to",
                     "hotel in", "ж/д билеты" },
}
local PURCHASES = filter {
  type = "purchase",
  within_days = 180,
  attr = { category = { "flight", "train", "hotel", "travel" } },
}

return segment_script {
  name = "frequent_traveller",
  version = "1.1.0",
  description = "Travel activity on 4+ days in 90 days or 2+ travel purchases in 180 days",
  segments = { "frequent_traveller" },
  evaluate = function(user)
    if user:count(PURCHASES) >= 2 then return { "frequent_traveller" } end
    if user:distinct("day", TRAVEL_VISITS, TRAVEL_SEARCHES) >= 4 then
      return { "frequent_traveller" }
    end
    return {}
  end,
}
