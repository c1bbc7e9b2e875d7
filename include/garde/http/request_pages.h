// What customers see of their data-subject requests: the access / portability package as
// JSON, CSV or a readable HTML page, the "your rights" part of the preference centre, and the
// DSR link pages (/r/{token}) that confirm a request or open a new one.
//
//   GARDE_RETURN_IF_ERROR(SendPackage(x, package_json, "html", CustomerWords(d, x, subject)));
#pragma once

#include <map>
#include <string>

#include "garde/app/deployment.h"
#include "garde/crypto/subject_token.h"
#include "garde/http/html.h"
#include "garde/http/router.h"

namespace garde {

// The words of a page for the subject: in the language the page asks for (?lang=), else the
// subject's `language` field, else the browser's Accept-Language, else default_language.
PageWords CustomerWords(Deployment& d, const Exchange& x, const std::string& subject_id);

// A customer's browser that follows a link that no longer works (404) sees a page in their
// language naming the controller to write to; API clients keep the problem+json answer.
Status CustomerErrors(Deployment& d, Exchange& x, Status s);

// Answers a package (from RequestDesk::Package) in `format`: json | html | csv.
Status SendPackage(Exchange& x, const std::string& package_json, const std::string& format,
                   const PageWords& t);

// The "your data and rights" section of a customer page (/p/{token} or /r/{token}; its forms
// post to the page itself): the customer's requests, and forms for each of the six rights (access,
// portability, rectification, erasure, restriction, objection).
Result<std::string> RightsSection(Deployment& d, const SubjectTokenClaims& claims,
                                  const PageWords& t);
// Handles a posted rights form (form=request, type=...); `message` says what happened, in
// the page's words `t`.
Status OpenRequestFromForm(Deployment& d, Exchange& x, const SubjectTokenClaims& claims,
                           const std::multimap<std::string, std::string>& form, const PageWords& t,
                           std::string* message);

// /r/{token} and /r/{token}/requests/{id}/package (only with the link sent for the request).
void AddRequestPages(Router& router, Deployment& d);

}  // namespace garde
