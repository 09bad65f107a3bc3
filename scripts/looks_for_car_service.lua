-- looks_for_car_service: searching for, or browsing, car repair and
-- maintenance services in the last 14 days.
-- Any one search, or two page views of car-service sites/sections, or a
-- booking form sent on one.
local SEARCHES = filter {
  type = "search",
  within_days = 14,
  query_contains = { "автосервис", "сто рядом", "шиномонтаж", "замена масла", "ремонт авто",
                     "ремонт машин", "развал схождение", "car service", "car repair", "oil change" },
}
local PAGES = filter {
  type = { "page_view", "click" },
  within_days = 14,
  text_contains = { "autoservice", "avtoservis", "shinomontazh", "/car-service", "/remont-avto" },
}
local BOOKINGS = filter {
  type = "form_submit",
  within_days = 14,
  text_contains = { "autoservice", "avtoservis", "/car-service", "/booking/service" },
}

return segment_script {
  name = "looks_for_car_service",
  version = "1.1.0",
  description = "Car service searches or visits within 14 days",
  segments = { "looks_for_car_service" },
  evaluate = function(user)
    if user:any(SEARCHES) or user:any(BOOKINGS) or user:count(PAGES) >= 2 then
      return { "looks_for_car_service" }
    end
    return {}
  end,
}
