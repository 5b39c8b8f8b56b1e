-- Refresh rotation chains: each thread (one connection) starts from its own refresh token and
-- always sends the token the previous answer returned, so every request is a real rotation.
local counter = 0
function setup(thread)
    counter = counter + 1
    thread:set("index", counter)
end

function init(args)
    local lines = {}
    for line in io.lines(os.getenv("TOKENS")) do table.insert(lines, line) end
    token = lines[index]
end

function request()
    return wrk.format("POST", "/oauth2/token", {
        ["Content-Type"] = "application/x-www-form-urlencoded",
        ["Authorization"] = "Basic " .. os.getenv("BASIC"),
    }, "grant_type=refresh_token&refresh_token=" .. token)
end

function response(status, headers, body)
    local next = string.match(body, '"refresh_token":"([^"]+)"')
    if next then token = next end
end
