-- car_older_than_3_years: the user's car is more than 3 model years old.
-- 1. A partner signal with attribute car_year (the newest one wins).
-- 2. Else: searches within 180 days that name a car brand together with a
--    model year more than 3 years ago ("kia rio 2012 колодки"), or searches
--    for typical repairs of ageing cars with a brand.
local BRANDS = { "kia", "hyundai", "toyota", "lada", "ваз", "renault", "skoda", "volkswagen", "vw ",
                 "ford", "nissan", "chevrolet", "mazda", "bmw", "mercedes", "audi", "киа", "хендай",
                 "тойота", "лада", "рено", "шкода", "форд", "ниссан", "шевроле", "мазда" }
local CAR_SEARCHES = filter { type = "search", within_days = 180, query_contains = BRANDS }
local AGEING_REPAIRS = { "замена ремня грм", "ремонт подвески", "замена сцепления", "ржавчин",
                         "кузовной ремонт", "timing belt", "rust repair" }
local MS_YEAR = 365.2425 * MS_DAY

local function current_year(now_ms)
  return math.floor(now_ms / MS_YEAR) + 1970
end

return segment_script {
  name = "car_older_than_3_years",
  version = "1.0.1",
  description = "Car model year more than 3 years before now",
  segments = { "car_older_than_3_years" },
  evaluate = function(user)
    local year_now = current_year(user:now_ms())
    local car_year = tonumber(user:attr("car_year", { type = "partner_signal" }) or "")
    if car_year then
      if year_now - car_year > 3 then return { "car_older_than_3_years" } end
      return {}
    end
    local repairs = 0
    for _, e in ipairs(user:events(CAR_SEARCHES)) do
      for y in e.query:gmatch("%f[%d](%d%d%d%d)%f[%D]") do
        y = tonumber(y)
        if y >= 1970 and y <= year_now and year_now - y > 3 then
          return { "car_older_than_3_years" }
        end
      end
      for _, r in ipairs(AGEING_REPAIRS) do
        if lower(e.query):find(r, 1, true) then repairs = repairs + 1 break end
      end
    end
    if repairs >= 2 then return { "car_older_than_3_years" } end
    return {}
  end,
}
